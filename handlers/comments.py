"""`POST /comments/{video_id}` (post a comment) and `GET /comments/{video_id}` (history).

The body is read as a stream so an oversize body is refused with 413 without
being held in memory. A 201 is sent only after the store committed the
comment. History pages by `seq`: no cursor gives the newest page, `before=N`
scrolls back (newest first), `after=N` catches up (oldest first), and both
together read the range between them, oldest first; paging is stable while
comments are added because `seq` never changes.

A post must be declared `Content-Type: application/json`, or it is refused with
415: a web page can make its visitors' browsers send any other type cross-site
without a CORS preflight. Posts, and history reads when `--read-rate` is set,
take a token from their address's bucket (429 without one). The newest page of
a video this process follows is joined from the video's ring instead of read
from the store (docs/DESIGN.md).
"""

import time
from math import ceil
from typing import Any

from tornado.web import stream_request_body

from handlers.base import ApiHandler
from livecomments import metrics, validation
from livecomments.channel import Entry
from livecomments.comment import Appended, Comment, Draft, encode_json
from livecomments.errors import ApiError
from livecomments.hub import Hub
from livecomments.ingest import Ingest
from livecomments.limits import RateLimiter
from store import CommentStore


@stream_request_body
class CommentsHandler(ApiHandler):
    def initialize(
        self,
        ingest: Ingest,
        store: CommentStore,
        hub: Hub,
        max_body: int,
        post_limiter: RateLimiter,
        read_limiter: RateLimiter,
        rings_see_every_post: bool,
    ) -> None:
        self._ingest = ingest
        self._store = store
        self._hub = hub
        self._max_body = max_body
        self._post_limiter = post_limiter
        self._read_limiter = read_limiter
        self._rings_see_every_post = rings_see_every_post
        self._body = bytearray()
        self._body_too_large = False
        self._body_read = False  # Tornado calls `post` or `get` only once the body is in

    def prepare(self) -> None:
        super().prepare()
        validation.check_video_id(self.path_args[0])
        length = self.request.headers.get("Content-Length")
        declared = (
            int(length) if length is not None and length.isascii() and length.isdigit() else 0
        )
        if self.request.method == "POST" and declared > self._max_body:
            raise self._too_large()

    def data_received(self, chunk: bytes) -> None:
        if len(self._body) + len(chunk) > self._max_body:
            self._body_too_large = True  # keep reading, but keep nothing
            self._body.clear()
        elif not self._body_too_large:
            self._body += chunk

    async def post(self, video_id: str) -> None:
        self._body_read = True
        if self._body_too_large:
            raise self._too_large()
        # Checked once the body is in, as the 413 of a chunked body is: refusing sooner
        # closes the connection under a client still sending, which may lose the answer.
        validation.check_json_media_type(self.request.headers.get("Content-Type"))
        draft = validation.parse_draft(
            bytes(self._body), self.request.headers.get("Idempotency-Key")
        )
        self._check_rate(self._post_limiter, "too many comments from this address; slow down")
        appended = await self._ingest.post(video_id, draft)
        _check_replay(draft, appended)
        if not appended.created:
            self.set_header("Idempotent-Replayed", "true")
        self.set_header(
            "Location", f"/comments/{video_id}?after={appended.comment.seq - 1}&limit=1"
        )
        self.send_json(201, appended.comment.to_json())

    async def get(self, video_id: str) -> None:
        self._body_read = True
        before = self._cursor("before", minimum=1)
        after = self._cursor("after", minimum=0)
        limit = validation.parse_limit(self.get_query_argument("limit", None))
        self._check_rate(self._read_limiter, "too many history reads from this address; slow down")
        newest = (
            await self._newest_from_ring(video_id, limit + 1)
            if before is None and after is None
            else None
        )
        if newest is not None:  # an active video's newest page, from its ring
            metrics.HISTORY_PAGES.labels("ring").inc()
            page_entries = newest[:limit]
            more = b"%d" % page_entries[-1].seq if len(newest) > limit else b"null"
            comments_json = b",".join(entry.json for entry in page_entries)
            self.send_json(200, b'{"comments":[%s],"next_cursor":%s}' % (comments_json, more))
            return
        if after is not None:
            comments = await self._store.page_after(video_id, after, limit + 1, before)
        else:
            comments = await self._store.page_before(video_id, before, limit + 1)
        metrics.HISTORY_PAGES.labels("store").inc()
        page = comments[:limit]
        next_cursor = page[-1].seq if len(comments) > limit else None
        self.send_json(200, encode_json(_page(page, next_cursor)))

    async def _newest_from_ring(self, video_id: str, count: int) -> list[Entry] | None:
        """The newest `count` entries from the video's ring in this process, if it has them
        all. When other processes post too (workers, instances), the ring may not have
        received a comment its client just posted through another one, so the store's
        newest seq, one indexed read, must agree."""
        newest = self._hub.newest_entries(video_id, count)
        if newest is None or self._rings_see_every_post:
            return newest
        in_ring = newest[0].seq if newest else 0
        return newest if await self._store.last_seq(video_id) == in_ring else None

    def _check_rate(self, limiter: RateLimiter, message: str) -> None:
        if not limiter.enabled:
            return
        wait = limiter.wait_needed(self.request.remote_ip or "", time.monotonic())
        if wait:
            raise ApiError(429, "rate_limited", message, ceil(wait))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        if not self._body_read:
            # Refused before its body was read (bad id, declared size): Tornado may then
            # close the connection, after the head is out. Say so, or a keep-alive client
            # would reuse the connection and see it drop.
            self.set_header("Connection", "close")
        super().write_error(status_code, **kwargs)

    def _cursor(self, name: str, *, minimum: int) -> int | None:
        value = self.get_query_argument(name, None)
        return None if value is None else validation.parse_cursor(name, value, minimum=minimum)

    def _too_large(self) -> ApiError:
        return ApiError(
            413, "body_too_large", f"request body must be at most {self._max_body} bytes"
        )


def _check_replay(draft: Draft, appended: Appended) -> None:
    """A reused idempotency key must come with the same comment."""
    stored = appended.comment
    if not appended.created and (stored.message, stored.author) != (draft.message, draft.author):
        raise ApiError(
            422,
            "idempotency_key_reused",
            "this Idempotency-Key was already used for a different comment",
        )


def _page(comments: list[Comment], next_cursor: int | None) -> dict[str, Any]:
    return {"comments": [c.to_dict() for c in comments], "next_cursor": next_cursor}
