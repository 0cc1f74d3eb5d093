"""The scale-out store: comments in MongoDB, through PyMongo's native async API.

    store = MongoStore.from_url("mongodb://db1,db2,db3/livecomments?replicaSet=rs0")

Owns the `comments` collection of the URL's database (default `livecomments`),
its index and every query. A comment is one document,
`{_id, video_id, seq, author, message, created_at}`.

Sequencing is optimistic (ARCHITECTURE.md): `append` numbers each video's
drafts from this process's cached newest `seq` of the video (videos missing
from the cache are read in one query per 1,000) and inserts the documents of all its
videos, grouped by video, with one ordered `insert_many`. If the unique
`(video_id, seq)` index refuses a number another writer took first, the
documents before the refused one are committed; the refused video reads its
newest `seq` and stored keys again, and everything not yet committed goes in
the next `insert_many` of the same call, numbered again. `seq` N+1 is tried
only once N is known to exist, so `seq` stays dense and in commit order with
any number of writers. A refusal that neither a taken `seq` nor a stored key
explains fails that video alone. Appends of one store object take turns, so a
process never races itself; the retry is only for other processes.

Idempotency: a comment posted with a key gets `_id = {video_id, idempotency_key}`,
so the `_id` index that every collection has refuses a second comment with that
key in the very insert that takes the `seq`; the refused draft replays the
stored comment.

Newest `seq` of many videos (`videos_ahead`, and an append's videos missing
from the cache): one aggregate per `VIDEOS_PER_QUERY` videos, `$match` on
`video_id` `$in` the list and `$group` by video counting its comments. The
count is the newest `seq` because `seq` is dense from 1 (and were it ever
short, an append numbered from it meets the duplicate key and reads the true
newest). Counting, not `$max` or `$sort` + `$first`: FerretDB 1.24 implements
no other `$group` accumulator, and reads the whole collection for any query on
`video_id`, so the one query per 1,000 videos is what keeps it cheap there.

Writes wait for `w=majority` unless the URL sets its own `w`; reads always go
to the primary. Every driver error becomes `StoreUnavailable`. Never uses
transactions or anything but plain MongoDB (the tests run on FerretDB), and
knows nothing of HTTP, the bus or viewers.
"""

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from pymongo import ASCENDING, DESCENDING, AsyncMongoClient, ReadPreference
from pymongo.errors import BulkWriteError, PyMongoError

from livecomments.comment import Appended, Comment, Draft, utc_timestamp
from store.base import VIDEOS_PER_QUERY, StoreUnavailable

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
        self._appending = asyncio.Lock()  # one append at a time: a process never races itself

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

    async def append(
        self, batches: Mapping[str, Sequence[Draft]]
    ) -> dict[str, list[Appended] | StoreUnavailable]:
        if not batches:
            return {}
        async with self._appending:
            return await self._append(batches)

    async def videos_ahead(self, known: Mapping[str, int]) -> dict[str, int]:
        with _unavailable_on_error():
            newest = await self._read_newest_of(known)
        return {video_id: seq for video_id, seq in newest.items() if seq > known[video_id]}

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

    async def _append(
        self, batches: Mapping[str, Sequence[Draft]]
    ) -> dict[str, list[Appended] | StoreUnavailable]:
        created_at = utc_timestamp()
        pending = [_VideoAppend(video_id, drafts) for video_id, drafts in batches.items()]
        with _unavailable_on_error():
            newest = await self._newest_for_append(batches)
        outcomes: dict[str, list[Appended] | StoreUnavailable] = {}
        while pending:
            inserts = [
                (video, comment)
                for video in pending
                for comment in video.numbered(newest[video.video_id], created_at)
            ]
            try:
                committed = await self._insert([(c, video.key_of(c)) for video, c in inserts])
                for video, comment in inserts[:committed]:
                    video.committed(comment)
                    newest[video.video_id] = comment.seq
                    self._remember(video.video_id, comment.seq)
                if committed < len(inserts):
                    refused, comment = inserts[committed]
                    newest[refused.video_id] = await self._learn_why_refused(refused, comment)
            except _VideoRefused as refusal:
                outcomes[refusal.video_id] = refusal.error
            except PyMongoError as exc:
                error = StoreUnavailable(f"MongoDB: {exc}")
                _settle_finished(pending, outcomes)  # committed before the error: answered
                if not outcomes and not any(video.committed_any() for video in pending):
                    raise error from exc  # nothing of this call is stored
                for video in pending:  # unfinished, perhaps stored in part: like any 503
                    outcomes.setdefault(video.video_id, error)
            _settle_finished(pending, outcomes)
            pending = [video for video in pending if video.video_id not in outcomes]
        return {video_id: outcomes[video_id] for video_id in batches}  # in the caller's order

    async def _newest_for_append(self, video_ids: Iterable[str]) -> dict[str, int]:
        """The newest seq of each video: the cached one, or read in one query if missing."""
        newest = {video_id: self._newest.get(video_id) for video_id in video_ids}
        missing = [video_id for video_id, seq in newest.items() if seq is None]
        read = await self._read_newest_of(missing) if missing else {}
        known: dict[str, int] = {}
        for video_id, seq in newest.items():
            known[video_id] = seq if seq is not None else read.get(video_id, 0)
            self._remember(video_id, known[video_id])
        return known

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

    async def _learn_why_refused(self, video: "_VideoAppend", refused: Comment) -> int:
        """After `refused` hit a duplicate key: read which of the video's keys are stored,
        so the retry replays them, and its newest seq, which the retry numbers from.
        Raises `_VideoRefused` if neither explains the refusal."""
        key = video.key_of(refused)
        video.stored.update(await self._find_keys(video.video_id, video.pending_keys()))
        newest = await self._read_newest(video.video_id)
        if key and key in video.stored:
            log.debug("video %r: idempotency key already stored, replaying it", video.video_id)
        elif newest >= refused.seq:
            log.debug(
                "video %r: seq %d was taken by another writer, retrying",
                video.video_id,
                refused.seq,
            )
        else:  # neither explains it: some other unique index, or a database that went back
            raise _VideoRefused(
                video.video_id,
                StoreUnavailable(f"MongoDB refused seq {refused.seq} of video {video.video_id!r}"),
            )
        return newest

    async def _find_keys(self, video_id: str, keys: set[str]) -> dict[str, Comment]:
        if not keys:
            return {}
        ids = [{"video_id": video_id, "idempotency_key": key} for key in keys]
        cursor = self._comments.find({"_id": {"$in": ids}})
        return {
            document["_id"]["idempotency_key"]: _comment(document)
            for document in await cursor.to_list()
        }

    async def _read_newest_of(self, video_ids: Iterable[str]) -> dict[str, int]:
        """The newest seq of each of the videos that has comments, one query per
        `VIDEOS_PER_QUERY` videos (a video without comments is left out)."""
        videos = list(video_ids)
        newest: dict[str, int] = {}
        for start in range(0, len(videos), VIDEOS_PER_QUERY):
            chunk = videos[start : start + VIDEOS_PER_QUERY]
            cursor = await self._comments.aggregate(
                [
                    {"$match": {"video_id": {"$in": chunk}}},
                    {"$group": {"_id": "$video_id", "newest": {"$count": {}}}},
                ]
            )
            newest.update({group["_id"]: int(group["newest"]) async for group in cursor})
        return newest

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


class _VideoRefused(Exception):
    """A refusal of one video's insert that nothing explains: that video fails alone."""

    def __init__(self, video_id: str, error: StoreUnavailable) -> None:
        super().__init__(video_id, error)
        self.video_id = video_id
        self.error = error


@dataclass
class _VideoAppend:
    """One video's drafts on their way in, over the insert rounds of one `append`."""

    video_id: str
    drafts: Sequence[Draft]
    stored: dict[str, Comment] = field(default_factory=dict)  # key -> its committed comment
    _results: list[Appended | None] = field(init=False)
    _numbered: dict[int, int] = field(init=False, default_factory=dict)  # seq -> draft index

    def __post_init__(self) -> None:
        self._results = [None] * len(self.drafts)

    def numbered(self, newest: int, created_at: str) -> list[Comment]:
        """Settle the drafts whose key is stored by now (replays), and number the rest
        from `newest`, in draft order: the comments to insert in this round."""
        comments: list[Comment] = []
        self._numbered.clear()
        keys_this_round: set[str] = set()
        seq = newest
        for i, draft in enumerate(self.drafts):
            key = draft.idempotency_key
            if self._results[i] is not None:
                continue
            if key and key in self.stored:
                self._results[i] = Appended(self.stored[key], created=False)
            elif key and key in keys_this_round:
                continue  # replays a comment of this round, once that one is committed
            else:
                seq += 1
                comment = Comment(self.video_id, seq, draft.author, draft.message, created_at)
                comments.append(comment)
                self._numbered[seq] = i
                if key:
                    keys_this_round.add(key)
        return comments

    def key_of(self, comment: Comment) -> str | None:
        return self.drafts[self._numbered[comment.seq]].idempotency_key

    def committed(self, comment: Comment) -> None:
        self._results[self._numbered[comment.seq]] = Appended(comment, created=True)
        if key := self.key_of(comment):
            self.stored[key] = comment

    def pending_keys(self) -> set[str]:
        return {
            key
            for draft, result in zip(self.drafts, self._results, strict=True)
            if result is None and (key := draft.idempotency_key)
        }

    def committed_any(self) -> bool:
        """Whether a draft of this video was stored by this call (a replay is not)."""
        return any(result is not None and result.created for result in self._results)

    def results(self) -> list[Appended] | None:
        """One result per draft, in order, once every draft has one; None until then."""
        if any(result is None for result in self._results):
            return None
        return [result for result in self._results if result is not None]


def _settle_finished(
    videos: list[_VideoAppend], outcomes: dict[str, list[Appended] | StoreUnavailable]
) -> None:
    """Record the results of every video whose drafts all have one by now."""
    for video in videos:
        if video.video_id not in outcomes and (results := video.results()) is not None:
            outcomes[video.video_id] = results


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
