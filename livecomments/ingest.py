"""Posting: the posts that arrive while a commit is in flight, to any videos, share the next one.

Owns the process's queue of posts waiting for the store. One commit is in flight
at a time; every post queued meanwhile, whatever its video, goes into the next
(up to `MAX_BATCH` posts), so 500 posts a second spread over 500 videos cost a
few commits a second instead of 500, and a quiet process adds no wait. The
store keeps each video's `seq` dense and in commit order within the shared
commit. A post's future resolves only after its comment is committed, or with
its video's own error or the whole commit's: a video that fails alone does not
hold the others back. Never touches HTTP or viewers: it raises the core's
`ShuttingDown` and the store's `StoreUnavailable`.
"""

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from livecomments import metrics
from livecomments.comment import Appended, Comment, Draft
from livecomments.errors import ShuttingDown
from store import CommentStore, StoreUnavailable

log = logging.getLogger(__name__)

MAX_BATCH = 1000

OnCommit = Callable[[str, Sequence[Comment]], None]


@dataclass(frozen=True, slots=True)
class _Post:
    video_id: str
    draft: Draft
    result: "asyncio.Future[Appended]"


class Ingest:
    """Appends drafts to the store in shared commits and announces what each committed."""

    def __init__(self, store: CommentStore, on_commit: OnCommit) -> None:
        self._store = store
        self._on_commit = on_commit
        self._queue: deque[_Post] = deque()
        self._writer: asyncio.Task[None] | None = None
        self._closing = False

    async def post(self, video_id: str, draft: Draft) -> Appended:
        """Commit `draft` as the next comment of `video_id` (or replay its idempotency key)."""
        if self._closing:
            raise ShuttingDown()
        result: asyncio.Future[Appended] = asyncio.get_running_loop().create_future()
        self._queue.append(_Post(video_id, draft, result))
        if self._writer is None:
            self._writer = asyncio.ensure_future(self._write())
        return await result

    async def close(self) -> None:
        """Refuse new posts; wait for those already taken to be committed or refused."""
        self._closing = True
        if self._writer is not None:
            await asyncio.gather(self._writer, return_exceptions=True)

    async def _write(self) -> None:
        queue = self._queue
        try:
            while queue:
                batch = [queue.popleft() for _ in range(min(MAX_BATCH, len(queue)))]
                try:
                    await self._commit(batch)
                except Exception:  # past the store's answer: no post of it may hang
                    log.exception("settling a commit of %d posts failed", len(batch))
                    _refuse_unanswered(batch, StoreUnavailable("the commit's outcome is unknown"))
                except BaseException:  # cancelled mid-commit
                    _refuse_unanswered(batch, ShuttingDown())
                    raise
        finally:
            while queue:  # only if this writer was cancelled mid-way
                post = queue.popleft()
                if not post.result.done():
                    post.result.set_exception(ShuttingDown())
            self._writer = None

    async def _commit(self, batch: list[_Post]) -> None:
        drafts: dict[str, list[Draft]] = {}
        for post in batch:
            drafts.setdefault(post.video_id, []).append(post.draft)
        try:
            outcomes = await self._store.append(drafts)
        except Exception as exc:
            _refuse_unanswered(batch, exc)
            return
        metrics.COMMITS.inc()
        created_count = 0
        for video_id, outcome in outcomes.items():
            if isinstance(outcome, Exception):
                continue
            created = [result.comment for result in outcome if result.created]
            created_count += len(created)
            if created:
                self._announce(video_id, created)
        metrics.COMMENTS_POSTED.inc(created_count)  # once a commit: an update is not free
        handed_out = dict.fromkeys(outcomes, 0)  # each video's results go out in draft order
        for post in batch:
            outcome = outcomes[post.video_id]
            index = handed_out[post.video_id]
            handed_out[post.video_id] = index + 1
            if post.result.done():  # its poster was cancelled; the comment stands
                continue
            if isinstance(outcome, Exception):
                post.result.set_exception(outcome)
            else:
                post.result.set_result(outcome[index])

    def _announce(self, video_id: str, created: list[Comment]) -> None:
        try:
            self._on_commit(video_id, created)
        except Exception:  # committed all the same: acknowledge; viewers read the store
            log.exception("delivering committed comments of video %s failed", video_id)


def _refuse_unanswered(batch: list[_Post], error: Exception) -> None:
    for post in batch:
        if not post.result.done():
            post.result.set_exception(error)
