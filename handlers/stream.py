"""`GET /comments/{video_id}/stream`: live comments as Server-Sent Events.

Resumes from `Last-Event-ID` (sent by a reconnecting EventSource) or
`?last_id=` with every missed comment exactly once, in order, then stays live.
This handler checks the request, admits the client, joins the video's channel
and sends the response head; then it hands the socket to an `SseConnection`
(see handlers/sse_connection.py), which serves the stream from there on, and
Tornado forgets the request.
"""

import logging
import socket

from handlers.base import ApiHandler, admit
from handlers.sse_connection import SseConnections
from livecomments import sse, validation
from livecomments.hub import Hub
from livecomments.limits import ConnectionCounter

log = logging.getLogger(__name__)


class StreamHandler(ApiHandler):
    def initialize(
        self, hub: Hub, connections: SseConnections, per_client: ConnectionCounter
    ) -> None:
        self._hub = hub
        self._connections = connections
        self._per_client = per_client

    def set_default_headers(self) -> None:
        super().set_default_headers()
        self.set_header("Cache-Control", "no-cache")

    async def get(self, video_id: str) -> None:
        validation.check_video_id(video_id)
        cursor = self._resume_cursor()
        client = self.request.remote_ip or ""
        admit(self._per_client, client)
        try:
            channel = await self._hub.join(video_id)
        except BaseException:
            self._per_client.close(client)
            raise
        try:
            sock, chunked = await self._send_head()
        except OSError as exc:  # the client went away, or no file was left to keep its socket
            log.info("a stream of %s for %s ended before it began: %s", video_id, client, exc)
            self._hub.leave(channel)
            self._per_client.close(client)
            return
        except BaseException:
            self._hub.leave(channel)
            self._per_client.close(client)
            raise
        connection = self._connections.open(
            channel, chunked=chunked, client=client, path=self.request.uri or ""
        )
        try:
            await connection.take_over(sock, cursor)
        except OSError as exc:
            log.info("a stream of %s for %s ended as it began: %s", video_id, client, exc)

    async def _send_head(self) -> tuple[socket.socket, bool]:
        """Send the response head and take the socket from Tornado: the socket, and whether
        the body is chunked (Tornado frames it so exactly when it answers HTTP/1.1)."""
        chunked = self.request.version == "HTTP/1.1"
        self.set_header("Content-Type", "text/event-stream; charset=utf-8")
        self.set_header("X-Accel-Buffering", "no")
        if not chunked:  # the body ends when the connection does
            self.set_header("Connection", "close")
            # Tornado answers an HTTP/1.0 request's `Connection: keep-alive` with its own
            # `Keep-Alive`, which would promise the client a connection this body cannot keep.
            self.request.headers.pop("Connection", None)
        self.write(sse.OPENING)
        await self.flush()
        stream = self.detach()
        try:
            sock = stream.socket.dup()
        finally:
            stream.close()
            # Tornado breaks the handler's cycle with its UI-module namespace when a response
            # finishes; a detached one never finishes. Left whole, the cycle held the handler,
            # request, HTTP connection and task (~33 objects) for the cyclic collector.
            self.ui = None  # type: ignore[assignment]
        return sock, chunked

    def _resume_cursor(self) -> int | None:
        header = self.request.headers.get("Last-Event-ID")
        if header is not None:
            return validation.parse_cursor("Last-Event-ID", header)
        query = self.get_query_argument("last_id", None)
        return None if query is None else validation.parse_cursor("last_id", query)
