"""The scale-out store: comments in MongoDB, through PyMongo's native async API.

    store = MongoStore.from_url("mongodb://db1,db2,db3/livecomments?replicaSet=rs0")

Owns the `comments` collection of the URL's database (default `livecomments`),
its index and every query. A comment is one document,
`{_id, video_id, seq, author, message, created_at}`.

Sequencing is optimistic (ARCHITECTURE.md): `append` numbers a batch from this
process's cached newest `seq` of the video and inserts it with one ordered
`insert_many`. If the unique `(video_id, seq)` index refuses a number another
writer took first, the documents before the refused one are committed; the rest
are numbered again from the newest `seq` read from the store. `seq` N+1 is
tried only once N is known to exist, so `seq` stays dense and in commit order
with any number of writers.

Idempotency: a comment posted with a key gets `_id = {video_id, idempotency_key}`,
so the `_id` index that every collection has refuses a second comment with that
key in the very insert that takes the `seq`; the refused draft replays the
stored comment.

Writes wait for `w=majority` unless the URL sets its own `w`; reads always go
to the primary. Every driver error becomes `StoreUnavailable`. Never uses
transactions or anything but plain MongoDB (the tests run on FerretDB), and
knows nothing of HTTP, the bus or viewers.
"""

import asyncio
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from pymongo import ASCENDING, DESCENDING, AsyncMongoClient, ReadPreference
from pymongo.errors import BulkWriteError, PyMongoError

from livecomments.comment import Appended, Comment, Draft, utc_timestamp
from store.base import StoreUnavailable

log = logging.getLogger(__name__)

Document = dict[str, Any]

DEFAULT_DATABASE = "livecomments"
CACHED_VIDEOS = 10_000
DUPLICATE_KEY = 11000
# Applied unless the URL sets them: a dead store answers 503 in about 3 s, and a
# hung one (it accepts, then never answers) in 10 s, instead of never.
CLIENT_DEFAULTS: dict[str, Any] = {
    "w": "majority",
    "serverSelectionTimeoutMS": 3000,
    "connectTimeoutMS": 3000,
    "socketTimeoutMS": 10000,
}
_FIELDS = ("video_id", "seq", "author", "message", "created_at")


class MongoStore:
    """`CommentStore` over the `comments` collection of one MongoDB database."""

    def __init__(self, url: str) -> None:
        given = {name.lower() for name, _ in parse_qsl(urlsplit(url).query)}
        options = {k: v for k, v in CLIENT_DEFAULTS.items() if k.lower() not in given}
        try:
            self._client: AsyncMongoClient[Document] = AsyncMongoClient(url, **options)
        except PyMongoError as exc:  # ConfigurationError: the URL itself is wrong
            raise ValueError(f"bad MongoDB URL: {exc}") from exc
        database = self._client.get_default_database(DEFAULT_DATABASE)
        self._comments = database.get_collection("comments", read_preference=ReadPreference.PRIMARY)
        self._newest: OrderedDict[str, int] = OrderedDict()  # video -> newest seq known
        self._appending = _VideoLocks()

    @classmethod
    def from_url(cls, url: str) -> "MongoStore":
        return cls(url)

    async def open(self) -> None:
        with _unavailable_on_error():
            await self._comments.create_index(
                [("video_id", ASCENDING), ("seq", ASCENDING)], unique=True, name="video_seq"
            )

    async def close(self) -> None:
        await self._client.close()

    async def ping(self) -> None:
        with _unavailable_on_error():
            await self._client.admin.command("ping")

    async def append(self, video_id: str, drafts: Sequence[Draft]) -> list[Appended]:
        # One append per video at a time from this object, so it never races itself;
        # other processes are what the duplicate-key retry is for.
        async with self._appending.hold(video_id):
            with _unavailable_on_error():
                return await self._append(video_id, drafts)

    async def last_seq(self, video_id: str) -> int:
        with _unavailable_on_error():
            return await self._read_newest(video_id)

    async def page_before(self, video_id: str, before: int | None, limit: int) -> list[Comment]:
        query: Document = {"video_id": video_id}
        if before is not None:
            query["seq"] = {"$lt": before}
        return await self._page(query, DESCENDING, limit)

    async def page_after(
        self, video_id: str, after: int, limit: int, before: int | None = None
    ) -> list[Comment]:
        seq: Document = {"$gt": after} if before is None else {"$gt": after, "$lt": before}
        return await self._page({"video_id": video_id, "seq": seq}, ASCENDING, limit)

    async def _page(self, query: Document, order: int, limit: int) -> list[Comment]:
        if limit <= 0:  # MongoDB reads limit 0 as "no limit"
            return []
        with _unavailable_on_error():
            cursor = self._comments.find(query, list(_FIELDS)).sort("seq", order).limit(limit)
            return [_comment(document) for document in await cursor.to_list()]

    async def _append(self, video_id: str, drafts: Sequence[Draft]) -> list[Appended]:
        created_at = utc_timestamp()
        results: list[Appended | None] = [None] * len(drafts)
        stored: dict[str, Comment] = {}  # idempotency key -> its committed comment
        while pending := [i for i, result in enumerate(results) if result is None]:
            seq = self._newest.get(video_id)
            if seq is None:
                seq = await self._read_newest(video_id)
            batch: list[tuple[int, Comment]] = []  # (index in drafts, comment to insert)
            keys_in_batch: set[str] = set()
            for i in pending:
                draft, key = drafts[i], drafts[i].idempotency_key
                if key and key in stored:
                    results[i] = Appended(stored[key], created=False)
                elif key and key in keys_in_batch:
                    continue  # replays a comment of this batch, once that one is committed
                else:
                    seq += 1
                    batch.append(
                        (i, Comment(video_id, seq, draft.author, draft.message, created_at))
                    )
                    if key:
                        keys_in_batch.add(key)
            committed = await self._insert([(c, drafts[i].idempotency_key) for i, c in batch])
            for i, comment in batch[:committed]:
                results[i] = Appended(comment, created=True)
                if key := drafts[i].idempotency_key:
                    stored[key] = comment
            if committed:
                self._remember(video_id, batch[committed - 1][1].seq)
            if committed < len(batch):
                index, refused = batch[committed]
                await self._learn_why_refused(video_id, drafts, index, refused.seq, stored)
        return [result for result in results if result is not None]

    async def _insert(self, batch: list[tuple[Comment, str | None]]) -> int:
        """Insert in order; how many were committed before a duplicate key stopped it."""
        if not batch:
            return 0
        try:
            await self._comments.insert_many(
                [_document(comment, key) for comment, key in batch], ordered=True
            )
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors") or [{}]
            if exc.details.get("writeConcernErrors") or errors[0].get("code") != DUPLICATE_KEY:
                raise
            return int(errors[0]["index"])
        return len(batch)

    async def _learn_why_refused(
        self,
        video_id: str,
        drafts: Sequence[Draft],
        index: int,
        seq: int,
        stored: dict[str, Comment],
    ) -> None:
        """After `drafts[index]` hit a duplicate key as `seq`: read which keys are
        stored and the newest seq, so the retry replays or renumbers, or fail."""
        keys = {key for draft in drafts[index:] if (key := draft.idempotency_key)}
        stored.update(await self._find_keys(video_id, keys))
        newest = await self._read_newest(video_id)
        key = drafts[index].idempotency_key
        if key and key in stored:
            log.debug("video %r: idempotency key already stored, replaying it", video_id)
        elif newest >= seq:
            log.debug("video %r: seq %d was taken by another writer, retrying", video_id, seq)
        else:  # neither explains it: some other unique index, or a database that went back
            raise StoreUnavailable(f"MongoDB refused seq {seq} of video {video_id!r}")

    async def _find_keys(self, video_id: str, keys: set[str]) -> dict[str, Comment]:
        if not keys:
            return {}
        ids = [{"video_id": video_id, "idempotency_key": key} for key in keys]
        cursor = self._comments.find({"_id": {"$in": ids}})
        return {
            document["_id"]["idempotency_key"]: _comment(document)
            for document in await cursor.to_list()
        }

    async def _read_newest(self, video_id: str) -> int:
        newest = await self._comments.find_one(
            {"video_id": video_id}, {"_id": 0, "seq": 1}, sort=[("seq", DESCENDING)]
        )
        seq = int(newest["seq"]) if newest else 0
        self._remember(video_id, seq)
        return seq

    def _remember(self, video_id: str, seq: int) -> None:
        # max: a `last_seq` read that overlapped an append must not move it back
        self._newest[video_id] = max(seq, self._newest.get(video_id, 0))
        self._newest.move_to_end(video_id)
        if len(self._newest) > CACHED_VIDEOS:
            self._newest.popitem(last=False)


class _VideoLocks:
    """An `asyncio.Lock` per video, kept only while someone holds or awaits it."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, video_id: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(video_id) or (asyncio.Lock(), 0)
        self._locks[video_id] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[video_id]
            if users == 1:
                del self._locks[video_id]
            else:
                self._locks[video_id] = (lock, users - 1)


def _comment(document: Document) -> Comment:
    return Comment(*(document[field] for field in _FIELDS))


def _document(comment: Comment, key: str | None) -> Document:
    document = comment.to_dict()
    if key:
        document["_id"] = {"video_id": comment.video_id, "idempotency_key": key}
    return document


@contextmanager
def _unavailable_on_error() -> Iterator[None]:
    try:
        yield
    except PyMongoError as exc:
        raise StoreUnavailable(f"MongoDB: {exc}") from exc
