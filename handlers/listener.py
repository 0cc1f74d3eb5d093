"""Accepting connections within the process's file limit.

Owns how many client connections this process holds, from one address and in
all, and what a client past that gets. `ConnectionBudget` counts every open
client connection: Tornado's HTTP connections and the streams that have left
Tornado. `GuardedHTTPServer` is Tornado's `HTTPServer` with its own accept loop:

- past `budget.limit + budget.spare` open connections, it is closed at once;
- past `budget.limit` connections being served (refusals aside), it is
  answered without Tornado and closed: a JSON 503 with `Retry-After`, or for a
  stream URL `200 text/event-stream` with a `retry:` field, since EventSource
  gives up for good on any other status (a `Refusal`);
- else, a peer address holding `per_peer` connections in Tornado (requests,
  idle keep-alive connections, long-polls, streams before they leave Tornado;
  a trusted proxy is exempt; IPv6 addresses count by /64) gets a JSON 429
  `too_many_connections` and the connection is closed, so one address cannot
  fill the budget. While `budget.spare` refusals are being answered already,
  the answer goes at once, without reading the request, so a flood's refusals
  do not hold files either;
- else it is served as usual;
- when `accept()` itself fails (no file descriptors or memory left), the socket
  is not watched for a pause and one line is logged per interval, where
  Tornado's loop would log a traceback per attempt and spin.

The file descriptors between the last refusal and the file limit are left for
the store, the bus and the process itself.
"""

import asyncio
import contextlib
import errno
import logging
import re
import resource
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from tornado.httpserver import HTTPServer
from tornado.iostream import IOStream

from livecomments import metrics
from livecomments.limits import ConnectionCounter
from livecomments.proxies import TrustedProxies

log = logging.getLogger(__name__)

# Connections taken per readiness of the listening socket, as Tornado does.
ACCEPTS_PER_WAKEUP = 128
# accept() errors that say the process or the system is out of a resource for now.
OUT_OF_RESOURCES = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}
ACCEPT_PAUSE = 0.5
LOG_INTERVAL = 10.0
RETRY_AFTER_S = 5
# A refused client's time to send its request head, then to close after the answer.
REFUSAL_TIMEOUT = 2.0
REFUSAL_HEAD_LIMIT = 8192
STREAM_PATH = re.compile(rb"^[A-Z]+ /comments/[^/ ?]+/stream(?:[? ]|$)")


def _json_answer(status: bytes, code: bytes, message: bytes) -> bytes:
    """A whole HTTP response carrying the API's JSON error, after which the server closes."""
    body = b'{"error":{"code":"%s","message":"%s"}}' % (code, message)
    head = [
        b"HTTP/1.1 " + status,
        b"Content-Type: application/json; charset=utf-8",
        b"X-Content-Type-Options: nosniff",
        b"Retry-After: %d" % RETRY_AFTER_S,
        b"Content-Length: %d" % len(body),
        b"Connection: close",
    ]
    return b"\r\n".join(head) + b"\r\n\r\n" + body


OVERLOADED = _json_answer(
    b"503 Service Unavailable",
    b"overloaded",
    b"this server holds too many connections; try again in a few seconds",
)
TOO_MANY_FROM_ADDRESS = _json_answer(
    b"429 Too Many Requests",
    b"too_many_connections",
    b"too many open connections from this address",
)
RECONNECT_LATER = b"".join(
    [
        b"HTTP/1.1 200 OK\r\n",
        b"Content-Type: text/event-stream; charset=utf-8\r\n",
        b"Cache-Control: no-cache\r\n",
        b"X-Content-Type-Options: nosniff\r\n",
        b"Connection: close\r\n\r\n",
        b": this server holds too many connections\nretry: %d\n\n" % (RETRY_AFTER_S * 1000),
    ]
)


@dataclass
class ConnectionBudget:
    """Open client connections of this process against their limits."""

    limit: int  # served below this many
    spare: int  # refused with an answer up to `limit + spare`; as many refusals at once
    open: int = 0
    refusing: int = 0  # of the open ones, refusals being answered

    @classmethod
    def for_file_limit(cls, max_connections: int) -> "ConnectionBudget":
        """`max_connections` (0: from the file limit, raised first to its hard ceiling),
        with a tenth of the files, at least 128 and at most 512, kept back for refusals and
        the rest (a tenth of 20,000 turned 2,000 viewers away)."""
        files = raise_file_limit()
        reserve = min(512, max(128, files // 10))
        limit = max_connections or max(1, files - reserve)
        return cls(limit=limit, spare=reserve // 2)

    def opened(self) -> None:
        self.open += 1
        metrics.CONNECTIONS_OPEN.inc()

    def closed(self) -> None:
        self.open -= 1
        metrics.CONNECTIONS_OPEN.dec()

    def refusal_started(self) -> None:
        self.refusing += 1
        self.opened()

    def refusal_ended(self) -> None:
        self.refusing -= 1
        self.closed()


def raise_file_limit() -> int:
    """Raise this process's open-file limit to its hard ceiling; the limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


class GuardedHTTPServer(HTTPServer):
    """Tornado's HTTP server, accepting within `budget` (see the module docstring)."""

    def initialize(  # type: ignore[override]  # keywords more than Tornado's
        self,
        *args: Any,
        budget: ConnectionBudget,
        per_peer: ConnectionCounter,
        proxies: TrustedProxies,
        **kwargs: Any,
    ) -> None:
        """Tornado's, and the limits (Tornado's configurable classes take `initialize`)."""
        super().initialize(*args, **kwargs)
        self.budget = budget
        self._per_peer = per_peer
        self._proxies = proxies
        self._refusing: set[asyncio.Future[None]] = set()  # being handed to the event loop

    def add_sockets(self, sockets: Iterable[socket.socket]) -> None:
        # TCPServer.stop() closes what `_sockets` holds and calls each `_handlers` entry
        # to stop accepting: the same bookkeeping as Tornado's own `add_sockets`.
        for sock in sockets:
            self._sockets[sock.fileno()] = sock
            self._handlers[sock.fileno()] = Acceptor(sock, self._take).stop

    def _take(self, connection: socket.socket, address: Any) -> None:
        budget = self.budget
        if budget.open >= budget.limit + budget.spare:
            metrics.CONNECTIONS_REFUSED.labels("closed").inc()
            connection.close()
        elif budget.open - budget.refusing >= budget.limit:
            metrics.CONNECTIONS_REFUSED.labels("answered").inc()
            self._refuse(connection, _overloaded)
        elif not self._admit_peer(_peer(address)):
            metrics.CONNECTIONS_REFUSED.labels("per_address").inc()
            if budget.refusing < budget.spare:
                self._refuse(connection, lambda head: TOO_MANY_FROM_ADDRESS)
            else:  # a flood: its refusals must not fill the budget either
                _answer_at_once(connection, TOO_MANY_FROM_ADDRESS)
        else:
            self._handle_connection(connection, address)

    def _admit_peer(self, peer: str) -> bool:
        return self._proxies.trusts(peer) or self._per_peer.try_open(peer)

    def _refuse(self, connection: socket.socket, answer: Callable[[bytes], bytes]) -> None:
        self.budget.refusal_started()
        handing = asyncio.ensure_future(Refusal.serve(connection, self.budget, answer))
        self._refusing.add(handing)
        handing.add_done_callback(self._refusing.discard)

    def handle_stream(self, stream: IOStream, address: tuple[str, int]) -> None:
        self.budget.opened()
        super().handle_stream(stream, address)

    def on_close(self, server_conn: object) -> None:
        self.budget.closed()
        peer = server_conn.context.remote_ip  # type: ignore[attr-defined]
        if not self._proxies.trusts(peer):
            self._per_peer.close(peer)
        super().on_close(server_conn)


class Acceptor:
    """Accepts connections on a listening socket, pausing when out of file descriptors."""

    def __init__(self, sock: socket.socket, take: Callable[[socket.socket, Any], None]) -> None:
        self._sock = sock
        self._take = take
        self._loop = asyncio.get_running_loop()
        self._resume: asyncio.TimerHandle | None = None
        self._failures = 0
        self._logged_at = -LOG_INTERVAL
        self._loop.add_reader(sock.fileno(), self._accept)

    def stop(self) -> None:
        if self._resume is not None:
            self._resume.cancel()
        else:
            self._loop.remove_reader(self._sock.fileno())

    def _accept(self) -> None:
        for _ in range(ACCEPTS_PER_WAKEUP):
            try:
                connection, address = self._sock.accept()
            except BlockingIOError:
                return
            except ConnectionAbortedError:
                continue
            except OSError as exc:
                if exc.errno not in OUT_OF_RESOURCES:
                    raise
                self._pause(exc)
                return
            self._take(connection, address)

    def _pause(self, exc: OSError) -> None:
        self._loop.remove_reader(self._sock.fileno())
        self._resume = self._loop.call_later(ACCEPT_PAUSE, self._watch_again)
        self._failures += 1
        now = time.monotonic()
        if now - self._logged_at >= LOG_INTERVAL:
            log.error(
                "cannot accept connections: %s; pausing %.1f s at a time (%d pauses since the"
                " last line)",
                exc.strerror,
                ACCEPT_PAUSE,
                self._failures,
            )
            self._logged_at, self._failures = now, 0

    def _watch_again(self) -> None:
        self._resume = None
        self._loop.add_reader(self._sock.fileno(), self._accept)


def _peer(address: Any) -> str:
    """The peer's address as Tornado's request context names it (`remote_ip`)."""
    return address[0] if isinstance(address, tuple) and address else "0.0.0.0"


def _answer_at_once(connection: socket.socket, answer: bytes) -> None:
    """Send `answer` without reading the request, and close: nothing is held, though a
    client still sending its request may see a reset instead of the answer."""
    connection.setblocking(False)
    with contextlib.suppress(OSError):  # a full or reset socket: the close says enough
        connection.send(answer)
    connection.close()


def _overloaded(head: bytes) -> bytes:
    return RECONNECT_LATER if STREAM_PATH.match(head) else OVERLOADED


class Refusal(asyncio.Protocol):
    """One connection refused: read its request head, send `answer(head)`, and close; at
    most `REFUSAL_TIMEOUT` for each of the two."""

    def __init__(self, budget: ConnectionBudget, answer: Callable[[bytes], bytes]) -> None:
        self._budget = budget
        self._answer_for = answer
        self._head = b""
        self._answered = False
        self._transport: asyncio.WriteTransport | None = None
        self._timer: asyncio.TimerHandle | None = None

    @classmethod
    async def serve(
        cls, connection: socket.socket, budget: ConnectionBudget, answer: Callable[[bytes], bytes]
    ) -> None:
        refusal = cls(budget, answer)
        try:
            await asyncio.get_running_loop().connect_accepted_socket(lambda: refusal, connection)
        except OSError:
            connection.close()
            budget.refusal_ended()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        self._timer = asyncio.get_running_loop().call_later(REFUSAL_TIMEOUT, self._answer)

    def data_received(self, data: bytes) -> None:
        if self._answered:
            return  # the rest of the request, read so that closing does not reset the answer
        self._head += data
        if b"\r\n\r\n" in self._head or len(self._head) > REFUSAL_HEAD_LIMIT:
            self._answer()

    def eof_received(self) -> bool:
        if not self._answered:
            self._answer()
        return False

    def _answer(self) -> None:
        transport = self._transport
        if transport is None:
            return
        if self._answered:  # the client took too long to close after the answer
            transport.abort()
            return
        self._answered = True
        transport.write(self._answer_for(self._head))
        if transport.can_write_eof():
            transport.write_eof()
        if self._timer is not None:
            self._timer.cancel()
        self._timer = asyncio.get_running_loop().call_later(REFUSAL_TIMEOUT, self._answer)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._budget.refusal_ended()
