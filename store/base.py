"""The `CommentStore` protocol: the durable record and the sequencer.

Guarantees every implementation must keep (tests/test_store_contract.py checks
them against each one):

- `append` returns only after the comments are committed (durable).
- `seq` is dense per video (1, 2, 3, ...) and follows commit order, enforced
  by a unique `(video_id, seq)` key, also with several processes writing.
- A draft whose idempotency key is already stored for the video is not stored
  again: the stored comment comes back with `created=False`.
- Any failure to reach or use the backing database raises `StoreUnavailable`.

A store knows nothing of HTTP, the bus or viewers.
"""

from collections.abc import Sequence
from typing import Protocol

from livecomments.comment import Appended, Comment, Draft


class StoreUnavailable(Exception):
    """The backing database cannot be reached or refused the operation."""


class CommentStore(Protocol):
    async def open(self) -> None:
        """Connect and create the schema and indexes if missing."""

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """Return if the database answers; raise `StoreUnavailable` otherwise."""

    async def append(self, video_id: str, drafts: Sequence[Draft]) -> list[Appended]:
        """Commit `drafts` in order as the next comments of `video_id`, one result each."""

    async def last_seq(self, video_id: str) -> int:
        """The highest committed `seq` of the video, 0 if it has none."""

    async def page_before(self, video_id: str, before: int | None, limit: int) -> list[Comment]:
        """Up to `limit` comments with `seq < before` (all if None), newest first."""

    async def page_after(
        self, video_id: str, after: int, limit: int, before: int | None = None
    ) -> list[Comment]:
        """Up to `limit` comments with `seq > after` (and `< before` if given), oldest first."""
