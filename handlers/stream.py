"""`GET /comments/{video_id}/stream`: live comments as Server-Sent Events.

Resumes from `Last-Event-ID` (sent by a reconnecting EventSource) or
`?last_id=` with every missed comment exactly once, in order, then stays live.
This handler checks the request, admits the client, joins the video's channel
and sends the response head; then it hands the socket to an `SseConnection`
(see handlers/sse_connection.py), which serves the stream from there on, and
Tornado forgets the request.
"""

from handlers.base import ApiHandler
from handlers.sse_connection import SseConnections
from livecomments import sse, validation
from livecomments.hub import Hub


class StreamHandler(ApiHandler):
    def initialize(self, hub: Hub, connections: SseConnections) -> None:
        self._hub = hub
        self._connections = connections

    def set_default_headers(self) -> None:
        super().set_default_headers()
        self.set_header("Cache-Control", "no-cache")

    async def get(self, video_id: str) -> None:
        validation.check_video_id(video_id)
        cursor = self._resume_cursor()
        client = self.request.remote_ip or ""
        self._connections.admit(client)
        try:
            channel = await self._hub.join(video_id)
        except BaseException:
            self._connections.release(client)
            raise
        try:
            self.set_header("Content-Type", "text/event-stream; charset=utf-8")
            self.set_header("X-Accel-Buffering", "no")
            self.write(sse.OPENING)
            await self.flush()
            # Tornado frames the body in chunks exactly when it answers HTTP/1.1.
            chunked = self.request.version == "HTTP/1.1"
            stream = self.detach()
            sock = stream.socket.dup()
            stream.close()
            # Tornado breaks the handler's cycle with its UI-module namespace when a response
            # finishes; a detached one never finishes. Left whole, the cycle held the handler,
            # request, HTTP connection and task (~33 objects) for the cyclic collector.
            self.ui = None  # type: ignore[assignment]
        except BaseException:
            self._hub.leave(channel)
            self._connections.release(client)
            raise
        connection = self._connections.open(
            channel, chunked=chunked, client=client, path=self.request.uri or ""
        )
        await connection.take_over(sock, cursor)

    def _resume_cursor(self) -> int | None:
        header = self.request.headers.get("Last-Event-ID")
        if header is not None:
            return validation.parse_cursor("Last-Event-ID", header)
        query = self.get_query_argument("last_id", None)
        return None if query is None else validation.parse_cursor("last_id", query)
