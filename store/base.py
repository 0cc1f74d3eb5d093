"""The `CommentStore` protocol: the durable record and the sequencer.

Guarantees every implementation must keep for every video, also when one
`append` carries many videos (tests/test_store_contract.py checks them against
each one):

- `append` returns only after the comments are committed (durable).
- `seq` is dense per video (1, 2, 3, ...) and follows commit order, enforced
  by a unique `(video_id, seq)` key, also with several processes writing.
- A draft whose idempotency key is already stored for the video, or used by an
  earlier draft of the same video in the same call, is not stored again: the
  stored comment comes back with `created=False`. Keys are per video.
- Any failure to reach or use the backing database is `StoreUnavailable`:
  raised when the whole call failed, or in the entry of the one video it
  failed, while the other videos of the call still commit.

Many live videos share one process, so the store works in batches of videos:
`append` commits the posts of many videos at once, and `videos_ahead` checks
many quiet videos in one query per `VIDEOS_PER_QUERY`. A store knows nothing of
HTTP, the bus or viewers.
"""

from collections.abc import Mapping, Sequence
from typing import Protocol

from livecomments.comment import Appended, Comment, Draft

VIDEOS_PER_QUERY = 1000


class StoreUnavailable(Exception):
    """The backing database cannot be reached or refused the operation."""


class CommentStore(Protocol):
    async def open(self) -> None:
        """Connect and create the schema and indexes if missing."""

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """Return if the database answers; raise `StoreUnavailable` otherwise."""

    async def append(
        self, batches: Mapping[str, Sequence[Draft]]
    ) -> dict[str, list[Appended] | StoreUnavailable]:
        """Commit each video's drafts, in order, as that video's next comments: every video
        in one commit where the database allows it (one SQLite transaction; one MongoDB
        insert_many round when nothing conflicts, after one read of the newest seqs it has
        not cached). One entry per video of `batches`: its results, one per draft in order,
        or the error that failed that video alone (the other videos still commit; like any
        StoreUnavailable, it does not promise that none of its drafts were stored). A
        failure before anything of the call was stored raises StoreUnavailable."""

    async def videos_ahead(self, known: Mapping[str, int]) -> dict[str, int]:
        """Of the videos in `known` (video id -> highest seq the caller has), those whose
        newest committed seq is above it, with that newest seq. Costs one query per
        1,000 videos however many there are (VIDEOS_PER_QUERY), for the hub's periodic
        completeness check of quiet videos."""

    async def last_seq(self, video_id: str) -> int:
        """The highest committed `seq` of the video, 0 if it has none."""

    async def page_before(self, video_id: str, before: int | None, limit: int) -> list[Comment]:
        """Up to `limit` comments with `seq < before` (all if None), newest first."""

    async def page_after(
        self, video_id: str, after: int, limit: int, before: int | None = None
    ) -> list[Comment]:
        """Up to `limit` comments with `seq > after` (and `< before` if given), oldest first."""
