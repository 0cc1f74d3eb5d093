"""Posting: concurrent posts of one video go to the store as one batch.

Owns the per-video queue of posts waiting for the store. While one append of a
video is in flight, new posts of that video queue up and go together in the
next append, so a busy video costs one store round trip per batch, and a quiet
one has no added wait. Every post's future resolves only after its comment is
committed (or with the store's error). Never touches HTTP or viewers.
"""

import asyncio
import logging
from collections.abc import Callable, Sequence

from livecomments import metrics
from livecomments.comment import Appended, Comment, Draft
from livecomments.errors import ApiError
from store import CommentStore

log = logging.getLogger(__name__)

MAX_BATCH = 500

OnCommit = Callable[[str, Sequence[Comment]], None]


class Ingest:
    """Appends drafts to the store in per-video batches and announces what was committed."""

    def __init__(self, store: CommentStore, on_commit: OnCommit) -> None:
        self._store = store
        self._on_commit = on_commit
        self._queues: dict[str, list[tuple[Draft, asyncio.Future[Appended]]]] = {}
        self._writers: dict[str, asyncio.Task[None]] = {}
        self._closing = False

    async def post(self, video_id: str, draft: Draft) -> Appended:
        """Commit `draft` as the next comment of `video_id` (or replay its idempotency key)."""
        if self._closing:
            raise ApiError(503, "shutting_down", "the server is stopping; post again")
        result: asyncio.Future[Appended] = asyncio.get_running_loop().create_future()
        self._queues.setdefault(video_id, []).append((draft, result))
        if video_id not in self._writers:
            self._writers[video_id] = asyncio.ensure_future(self._write(video_id))
        return await result

    async def close(self) -> None:
        """Refuse new posts; wait for those already taken to be committed or refused."""
        self._closing = True
        await asyncio.gather(*self._writers.values(), return_exceptions=True)

    async def _write(self, video_id: str) -> None:
        try:
            while queue := self._queues.get(video_id):
                batch = queue[:MAX_BATCH]
                del queue[:MAX_BATCH]
                await self._append(video_id, batch)
        finally:
            for _, waiter in self._queues.pop(video_id, []):
                if not waiter.done():  # only if this writer was cancelled mid-way
                    waiter.set_exception(ApiError(503, "shutting_down", "the server is stopping"))
            del self._writers[video_id]

    async def _append(
        self, video_id: str, batch: list[tuple[Draft, asyncio.Future[Appended]]]
    ) -> None:
        try:
            results = await self._store.append(video_id, [draft for draft, _ in batch])
        except Exception as exc:
            for _, waiter in batch:
                if not waiter.done():
                    waiter.set_exception(exc)
            return
        created = [result.comment for result in results if result.created]
        if created:
            metrics.COMMENTS_POSTED.inc(len(created))  # once a batch: an update is not free
            try:
                self._on_commit(video_id, created)
            except Exception:  # committed all the same: acknowledge; viewers read the store
                log.exception("delivering committed comments of video %s failed", video_id)
        for (_, waiter), result in zip(batch, results, strict=True):
            if not waiter.done():
                waiter.set_result(result)
