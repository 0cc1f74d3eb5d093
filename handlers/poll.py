"""`GET /comments/{video_id}/poll?after=&timeout=`: long-polling for clients without EventSource.

Answers at once when comments after the cursor exist (from the ring, else the
store), else waits for the next delivery up to `timeout` seconds and answers
an empty list with the same cursor. Without `after` it waits for comments
newer than the newest one now. A closed connection ends the wait at once. A
waiting long-poll counts against its address's cap with its streams (429
`too_many_streams` past it).
"""

import asyncio

from handlers.base import ApiHandler, admit
from livecomments import metrics, validation
from livecomments.channel import Channel
from livecomments.hub import Hub
from livecomments.limits import ConnectionCounter

POLL_PAGE = 100


class LongPollHandler(ApiHandler):
    def initialize(self, hub: Hub, per_client: ConnectionCounter) -> None:
        self._hub = hub
        self._per_client = per_client
        self._waiter: asyncio.Future[None] | None = None
        self._client_gone = False

    def set_default_headers(self) -> None:
        super().set_default_headers()
        self.set_header("Cache-Control", "no-store")

    async def get(self, video_id: str) -> None:
        validation.check_video_id(video_id)
        after = self.get_query_argument("after", None)
        cursor = None if after is None else validation.parse_cursor("after", after)
        timeout = validation.parse_poll_timeout(self.get_query_argument("timeout", None))
        client = self.request.remote_ip or ""
        admit(self._per_client, client)
        try:
            channel = await self._hub.join(video_id)
            try:
                await self._answer(channel, cursor, wait_seconds=timeout)
            finally:
                self._hub.leave(channel)
        finally:
            self._per_client.close(client)

    async def _answer(self, channel: Channel, after: int | None, wait_seconds: float) -> None:
        cursor = (
            channel.last_seq if after is None else await self._hub.settle_cursor(channel, after)
        )
        entries = await self._hub.read_after(channel, cursor, POLL_PAGE)
        if not entries and wait_seconds > 0 and not self._client_gone:
            await self._wait(channel, wait_seconds)
            if self._client_gone:
                return
            entries = await self._hub.read_after(channel, cursor, POLL_PAGE)
        if entries:
            cursor = entries[-1].seq
        body = b'{"comments":[%s],"cursor":%d}' % (b",".join(e.json for e in entries), cursor)
        self.send_json(200, body)

    async def _wait(self, channel: Channel, wait_seconds: float) -> None:
        self._waiter = channel.next_delivery()
        metrics.POLLS_WAITING.inc()
        try:
            await asyncio.wait({self._waiter}, timeout=wait_seconds)
        finally:
            metrics.POLLS_WAITING.dec()
            self._waiter.cancel()

    def on_connection_close(self) -> None:
        self._client_gone = True
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)
