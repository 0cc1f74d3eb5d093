"""A live SSE connection after its response head: the socket, framed writes, its end.

Once `StreamHandler` has sent the response head, it hands the socket over to
an `SseConnection`, an asyncio protocol on the event loop's own transport (C
code under uvloop), and Tornado forgets the request. A viewer then costs a
transport and one small object instead of Tornado's connection, stream,
request and handler, and a fan-out write is one `write` of bytes framed once
for every viewer, which the transport hands to the kernel at once.

Owns the HTTP framing of the body (chunked for HTTP/1.1, so a clean end is
visible; close-delimited for HTTP/1.0), the bound on unsent bytes (a viewer
more than `viewer_buffer` behind is cut off and resumes with `Last-Event-ID`),
how long a catching-up viewer may take nothing (`stall_timeout`, then it is cut
off too), holding frames while the transport is paused (each write into a
paused transport costs about 650 bytes of write request, so a stalled viewer
would hold far more than its unsent bytes; a held frame costs a list slot, its
bytes shared), the pace of catch-up (`drain`), and releasing everything the
stream held when the connection closes. `SseConnections` tracks the open ones, so that
shutdown can end them cleanly, and counts each in the process's connection budget and its
client's open streams.
"""

import asyncio
import logging
import socket
import time
from typing import cast

from handlers.listener import ConnectionBudget
from livecomments import logs, metrics
from livecomments.channel import Channel
from livecomments.hub import Hub
from livecomments.limits import ConnectionCounter
from store import StoreUnavailable

log = logging.getLogger(__name__)

# Bytes the kernel may hold for one stream (Linux doubles it); autotuning would allow megabytes.
KERNEL_SEND_BUFFER = 128 * 1024
# Catch-up waits while more than this is unsent, so it goes at the client's pace.
CATCH_UP_HIGH_WATER = 64 * 1024
LAST_CHUNK = b"0\r\n\r\n"


class SseConnection(asyncio.Protocol):
    """One viewer's stream: takes batches of frames from its channel, never blocks."""

    __slots__ = (
        "_catching_up",
        "_chunked",
        "_ended",
        "_held",
        "_held_bytes",
        "_owner",
        "_transport",
        "_writable",
        "channel",
        "client",
        "opened_at",
        "path",
    )

    def __init__(
        self, owner: "SseConnections", channel: Channel, *, chunked: bool, client: str, path: str
    ) -> None:
        self.channel = channel
        self.client = client
        self.path = path
        self.opened_at = time.monotonic()
        self._owner = owner
        self._chunked = chunked
        self._transport: asyncio.WriteTransport | None = None
        self._writable: asyncio.Future[None] | None = None  # set while the transport is paused
        self._held: list[bytes] | None = None  # frames sent while it was paused, in order
        self._held_bytes = 0
        self._catching_up: asyncio.Task[None] | None = None
        self._ended = False

    async def take_over(self, sock: socket.socket, cursor: int | None) -> None:
        """Serve the stream on `sock`: catch up from `cursor` in the background, then go live."""
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, KERNEL_SEND_BUFFER)
            await asyncio.get_running_loop().connect_accepted_socket(lambda: self, sock)
        except BaseException as exc:
            sock.close()
            self.connection_lost(exc if isinstance(exc, Exception) else None)
            raise
        self._catching_up = asyncio.ensure_future(self._catch_up(cursor))

    async def _catch_up(self, cursor: int | None) -> None:
        try:
            await self._owner.hub.attach(self.channel, self, cursor, self._drain)
        except StoreUnavailable as exc:  # the client resumes from its last id
            log.warning("ended a stream of %s for %s: %s", self.channel.video_id, self.client, exc)
            self.end()
        except Exception:
            log.exception(
                "catching up a stream of %s for %s failed", self.channel.video_id, self.client
            )
            self.end()
        finally:
            self._catching_up = None  # a live viewer keeps no finished task

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        writer = cast(asyncio.WriteTransport, transport)  # uvloop's is one, without the base class
        writer.set_write_buffer_limits(high=CATCH_UP_HIGH_WATER)
        self._transport = writer
        if self._ended:  # ended at shutdown while being handed over
            self._finish(writer)

    def data_received(self, data: bytes) -> None:
        """A client sends nothing after its request; whatever it sends is ignored."""

    def eof_received(self) -> bool:
        return False  # the client is done: close the connection

    def pause_writing(self) -> None:
        self._writable = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        self._wake_writer()  # first: the write below may pause the transport again
        if self._transport is not None:
            self._write_held(self._transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self._ended = True
        self._wake_writer()
        if self._catching_up is not None:
            self._catching_up.cancel()
        self.channel.remove_viewer(self)
        self._owner.closed(self)

    def send(self, data: bytes) -> None:
        """Queue `data` for this viewer, or cut the viewer off if it is too far behind."""
        transport = self._transport
        if self._ended or transport is None:
            return
        if transport.get_write_buffer_size() + self._held_bytes > self._owner.viewer_buffer:
            self._cut_off()
            return
        frame = self._owner.chunk(data) if self._chunked else data
        if self._writable is None:
            transport.write(frame)
        elif self._held is None:
            self._held, self._held_bytes = [frame], len(frame)
        else:
            self._held.append(frame)
            self._held_bytes += len(frame)

    def end(self) -> None:
        """Finish the stream cleanly (the client reconnects and resumes)."""
        if self._ended:
            return
        self._ended = True
        if self._transport is not None:
            self._finish(self._transport)

    def abort(self) -> None:
        """Drop the connection now, unsent bytes and all."""
        self._ended = True
        self._held, self._held_bytes = None, 0
        if self._transport is not None:
            self._transport.abort()

    def _cut_off(self) -> None:
        metrics.VIEWERS_CUT_OFF.inc()
        log.info("cut off a slow viewer of %s", self.channel.video_id)
        self.abort()

    def _write_held(self, transport: asyncio.WriteTransport) -> None:
        """Hand the held frames to the transport: one write request for all of them."""
        if self._held is not None:
            held, self._held, self._held_bytes = self._held, None, 0
            transport.writelines(held)

    def _finish(self, transport: asyncio.WriteTransport) -> None:
        self._write_held(transport)
        if self._chunked:
            transport.write(LAST_CHUNK)
        transport.close()

    async def _drain(self) -> bool:
        """Wait until the transport has room again; False if the stream ended, or if the
        client took nothing for `stall_timeout` (it is then cut off)."""
        if self._writable is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._writable), self._owner.stall_timeout)
            except TimeoutError:
                self._cut_off()
        return not self._ended

    def _wake_writer(self) -> None:
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)
        self._writable = None


class SseConnections:
    """This process's streams: admitting them, what they hold, ending them all at shutdown."""

    def __init__(
        self,
        hub: Hub,
        viewer_buffer: int,
        stall_timeout: float,
        per_client: ConnectionCounter,
        budget: ConnectionBudget,
    ) -> None:
        self.hub = hub
        self.viewer_buffer = viewer_buffer
        self.stall_timeout = stall_timeout
        self._per_client = per_client
        self._budget = budget
        self._open: set[SseConnection] = set()
        self._last_data: bytes | None = None
        self._last_chunk = b""
        self._all_closed = asyncio.Event()
        self._all_closed.set()

    def chunk(self, data: bytes) -> bytes:
        """`data` as one HTTP/1.1 chunk; framed once per batch, however many viewers take it."""
        if data is not self._last_data:
            self._last_data = data
            self._last_chunk = b"%x\r\n%s\r\n" % (len(data), data)
        return self._last_chunk

    def open(self, channel: Channel, *, chunked: bool, client: str, path: str) -> SseConnection:
        """The connection of an admitted viewer of `channel`, who joined it, and of its
        socket; on close it leaves the channel, frees its places and logs the request with its
        whole duration."""
        connection = SseConnection(self, channel, chunked=chunked, client=client, path=path)
        self._budget.opened()
        self._open.add(connection)
        self._all_closed.clear()
        metrics.STREAMS_OPEN.inc()
        return connection

    def closed(self, connection: SseConnection) -> None:
        self._open.discard(connection)
        if not self._open:
            self._all_closed.set()
        self.hub.leave(connection.channel)
        self._per_client.close(connection.client)
        self._budget.closed()
        metrics.STREAMS_OPEN.dec()
        duration = time.monotonic() - connection.opened_at
        logs.log_line("GET", connection.path, 200, duration, connection.client)

    async def close(self, grace: float) -> None:
        """End every stream cleanly; drop those whose client did not take the end in `grace`."""
        for connection in list(self._open):
            connection.end()
        try:
            await asyncio.wait_for(self._all_closed.wait(), grace)
        except TimeoutError:
            for connection in list(self._open):
                connection.abort()
