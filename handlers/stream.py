"""`GET /comments/{video_id}/stream`: live comments as Server-Sent Events.

Resumes from `Last-Event-ID` (sent by a reconnecting EventSource) or
`?last_id=` with every missed comment exactly once, in order, then stays live.
Memory per viewer is bounded: Tornado's write buffer is unbounded, so this
handler counts the bytes it has queued and not yet seen flushed, and cuts a
viewer off once they pass `viewer_buffer` (so the bound is that plus one
batch); the client reconnects with `Last-Event-ID` and catches up from the ring
or the store. The socket's kernel send buffer is capped as well, so the whole
cost of a stalled viewer is bounded.
"""

import asyncio
import logging
import socket

from tornado.http1connection import HTTP1Connection

from handlers.base import ApiHandler
from livecomments import metrics, sse, validation
from livecomments.errors import ApiError
from livecomments.hub import Hub
from livecomments.limits import StreamCounter
from store import StoreUnavailable

log = logging.getLogger(__name__)

# Bytes the kernel may hold for one stream (Linux doubles it); autotuning would allow megabytes.
KERNEL_SEND_BUFFER = 128 * 1024


class StreamHandler(ApiHandler):
    def initialize(self, hub: Hub, viewer_buffer: int, streams: StreamCounter) -> None:
        self._hub = hub
        self._viewer_buffer = viewer_buffer
        self._streams = streams
        self._queued = 0  # bytes written to the handler, not yet handed to the connection
        self._in_flight = 0  # bytes of the flush under way
        self._flushing: asyncio.Future[None] | None = None
        self._done = asyncio.get_running_loop().create_future()

    def set_default_headers(self) -> None:
        super().set_default_headers()
        self.set_header("Cache-Control", "no-cache")

    async def get(self, video_id: str) -> None:
        validation.check_video_id(video_id)
        cursor = self._resume_cursor()
        client = self.request.remote_ip or ""
        if not self._streams.try_open(client):
            raise ApiError(429, "too_many_streams", "too many open streams from this address")
        try:
            await self._serve(video_id, cursor)
        finally:
            self._streams.close(client)

    async def _serve(self, video_id: str, cursor: int | None) -> None:
        channel = await self._hub.join(video_id)
        metrics.STREAMS_OPEN.inc()
        try:
            self._limit_kernel_buffer()
            self.set_header("Content-Type", "text/event-stream; charset=utf-8")
            self.set_header("X-Accel-Buffering", "no")
            self.send(sse.OPENING)
            await self._hub.attach(channel, self, cursor, self._drain)
            await self._done
        except StoreUnavailable as exc:  # mid catch-up: end the stream, the client resumes
            log.warning("ended a stream of %s: %s", video_id, exc)
        finally:
            channel.remove_viewer(self)
            self._hub.leave(channel)
            metrics.STREAMS_OPEN.dec()

    def _resume_cursor(self) -> int | None:
        header = self.request.headers.get("Last-Event-ID")
        if header is not None:
            return validation.parse_cursor("Last-Event-ID", header)
        query = self.get_query_argument("last_id", None)
        return None if query is None else validation.parse_cursor("last_id", query)

    def send(self, data: bytes) -> None:
        """Queue `data` for this viewer, or cut the viewer off if it is too far behind."""
        if self._done.done():
            return
        if self._queued + self._in_flight > self._viewer_buffer:
            metrics.VIEWERS_CUT_OFF.inc()
            log.info("cut off a slow viewer of %s", self.request.uri)
            self._close_connection()
            self._finish_stream()
            return
        self._queued += len(data)
        self.write(data)
        if self._flushing is None:
            self._flush_queued()

    def _flush_queued(self) -> None:
        """Hand what is queued to the connection; one flush at a time, since Tornado
        resolves only the newest of several pending flushes."""
        self._in_flight, self._queued = self._queued, 0
        self._flushing = self.flush()
        self._flushing.add_done_callback(self._flushed)

    def _flushed(self, future: "asyncio.Future[None]") -> None:
        self._flushing = None
        self._in_flight = 0
        if future.cancelled() or future.exception() is not None:
            self._finish_stream()
        elif self._queued and not self._done.done():
            self._flush_queued()

    def _limit_kernel_buffer(self) -> None:
        """Cap the socket's send buffer too, so the kernel cannot hold megabytes per viewer."""
        connection = self.request.connection
        if isinstance(connection, HTTP1Connection) and connection.stream.socket is not None:
            connection.stream.socket.setsockopt(
                socket.SOL_SOCKET, socket.SO_SNDBUF, KERNEL_SEND_BUFFER
            )

    def _close_connection(self) -> None:
        connection = self.request.connection
        if isinstance(connection, HTTP1Connection):
            connection.close()

    def end(self) -> None:
        self._finish_stream()

    def on_connection_close(self) -> None:
        self._finish_stream()

    async def _drain(self) -> bool:
        """Wait until everything sent so far reached the socket; False if the viewer is gone."""
        while self._flushing is not None and not self._done.done():
            await asyncio.wait({self._flushing, self._done}, return_when=asyncio.FIRST_COMPLETED)
        return not self._done.done()

    def _finish_stream(self) -> None:
        if not self._done.done():
            self._done.set_result(None)
