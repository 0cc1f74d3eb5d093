"""The embedded store: comments in one SQLite file, safe for several processes.

Owns the SQLite schema and every SQL statement. SQLite calls block, so they run
on two private threads, one per connection: a writer and a reader (WAL mode
lets reads go on while a write commits). Both threads are daemons, started by
the first call; `close` ends them.

Sequencing: `append` waits for its turn among this service's writers
(store/write_lock.py), takes SQLite's write lock (`BEGIN IMMEDIATE`), and for
each video of the call reads its `max(seq)` and inserts its drafts as the next
numbers. The write lock already orders all writers, also those in other
processes, so no retry loop is needed; the `(video_id, seq)` primary key still
refuses any duplicate. See docs/DESIGN.md for why this differs from the
optimistic insert of the MongoDB store. Durability: `synchronous=FULL`, so a
commit survives power loss.

Many videos, one commit: all videos of an `append` share one transaction, so
one fsync, and each video is written under a SAVEPOINT of its own: an SQLite
error in one video's rows rolls back that video alone, which gets
`StoreUnavailable` in its entry, and the others commit. `videos_ahead` reads
the newest `seq` of up to `VIDEOS_PER_QUERY` videos per statement, each through
the primary key (a seek or two per video, never a scan of its comments).
"""

import asyncio
import contextlib
import functools
import json
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

from livecomments.comment import Appended, Comment, Draft, utc_timestamp
from store.base import VIDEOS_PER_QUERY, StoreUnavailable
from store.write_lock import WriteLock, WriteTurn

log = logging.getLogger(__name__)
T = TypeVar("T")
BUSY_TIMEOUT_SECONDS = 5.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS comments (
    video_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    author TEXT NOT NULL,
    message TEXT NOT NULL,
    created_at TEXT NOT NULL,
    idempotency_key TEXT,
    PRIMARY KEY (video_id, seq)
) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS comments_idempotency
    ON comments (video_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
"""
_COLUMNS = "video_id, seq, author, message, created_at"


class SQLiteStore:
    """`CommentStore` over one SQLite database file."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._writer = _ConnectionThread(path, "livecomments-sqlite-writer", WriteLock(path))
        self._reader = _ConnectionThread(path, "livecomments-sqlite-reader")

    @classmethod
    def from_url(cls, url: str) -> "SQLiteStore":
        path = urlsplit(url).path[1:]
        if not path or path == ":memory:":
            raise ValueError(f"{url!r} needs a file path, e.g. sqlite:///livecomments.db")
        return cls(path)

    async def open(self) -> None:
        await self._writer.open(_prepare_schema)
        await self._reader.open(_prepare_reader)

    async def close(self) -> None:
        await self._reader.close()
        await self._writer.close()

    async def ping(self) -> None:
        """The reader answers, and the writer gets its turn: its lock file opens and no
        other process keeps the write lock (a failing writer fails readiness too)."""
        await self._reader.run(_select_one)
        await self._writer.run(_select_one)

    async def append(
        self, batches: Mapping[str, Sequence[Draft]]
    ) -> dict[str, list[Appended] | StoreUnavailable]:
        if not batches:
            return {}
        return await self._writer.run(lambda db: _append(db, batches))

    async def videos_ahead(self, known: Mapping[str, int]) -> dict[str, int]:
        videos = list(known.items())
        ahead: dict[str, int] = {}
        for start in range(0, len(videos), VIDEOS_PER_QUERY):
            chunk = json.dumps(dict(videos[start : start + VIDEOS_PER_QUERY]))
            ahead.update(await self._reader.run(functools.partial(_videos_ahead, known_json=chunk)))
        return ahead

    async def last_seq(self, video_id: str) -> int:
        return await self._reader.run(lambda db: _last_seq(db, video_id))

    async def page_before(self, video_id: str, before: int | None, limit: int) -> list[Comment]:
        bound = before if before is not None else 2**63 - 1
        sql = (
            f"SELECT {_COLUMNS} FROM comments WHERE video_id = ? AND seq < ? "
            "ORDER BY seq DESC LIMIT ?"
        )
        return await self._reader.run(lambda db: _comments(db, sql, (video_id, bound, limit)))

    async def page_after(
        self, video_id: str, after: int, limit: int, before: int | None = None
    ) -> list[Comment]:
        bound = before if before is not None else 2**63 - 1
        sql = (
            f"SELECT {_COLUMNS} FROM comments WHERE video_id = ? AND seq > ? AND seq < ? "
            "ORDER BY seq ASC LIMIT ?"
        )
        return await self._reader.run(
            lambda db: _comments(db, sql, (video_id, after, bound, limit))
        )


class _ConnectionThread:
    """One SQLite connection, used only from its own thread.

    Work goes to the thread on a queue and its result comes back with one
    `call_soon_threadsafe`: a `ThreadPoolExecutor` hop costs about half again as
    much CPU (its `submit` and future chaining are Python), paid on every batch.
    With a `write_lock`, every `run` holds it, and a `run` that has not started
    within the busy timeout of being queued (behind a stuck peer, or a backlog
    of its own) is given up: never run, answered with `StoreUnavailable`.
    """

    def __init__(self, path: str, name: str, write_lock: WriteLock | None = None) -> None:
        self._path = path
        self._name = name
        self._write_lock = write_lock
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._db: sqlite3.Connection | None = None

    async def open(self, prepare: Callable[[sqlite3.Connection], None]) -> None:
        def connect() -> None:
            db = sqlite3.connect(self._path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None)
            prepare(db)
            self._db = db

        await self._call(connect)

    async def close(self) -> None:
        """Close the connection on its thread and end the thread; if the thread is
        stuck behind a writer of another process, leave it after the busy timeout
        (a daemon: it closes the connection when it gets there, or ends with the process)."""

        def disconnect() -> None:
            if self._db is not None:
                self._db.close()
                self._db = None
            if self._write_lock is not None:
                self._write_lock.close()

        if self._closed:
            return
        done = self._submit(disconnect)
        self._closed = True
        self._jobs.put(None)
        finished, _ = await asyncio.wait((done,), timeout=BUSY_TIMEOUT_SECONDS)
        if not finished:
            log.warning("left %s behind, still waiting for the write lock", self._name)
            return
        assert self._thread is not None
        self._thread.join()
        done.result()

    async def run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        lock = self._write_lock
        turn = None if lock is None else WriteTurn()

        def call() -> T:
            if self._db is None:
                raise StoreUnavailable("the SQLite store is not open")
            if lock is None or turn is None:
                return work(self._db)
            if turn.given_up:  # spare the peers: do not queue for a turn nobody awaits
                raise StoreUnavailable("SQLite: gave up waiting for the write lock")
            with lock.held():
                if not turn.start():
                    raise StoreUnavailable("SQLite: gave up waiting for the write lock")
                return work(self._db)

        return await self._call(call, turn)

    async def _call(self, work: Callable[[], T], turn: WriteTurn | None = None) -> T:
        done = self._submit(work)
        patience = None
        if turn is not None:
            patience = done.get_loop().call_later(BUSY_TIMEOUT_SECONDS, _give_up, done, turn)
        try:
            return await done
        except (sqlite3.Error, OSError) as exc:  # OSError: the write lock's file
            raise StoreUnavailable(f"SQLite: {exc}") from exc
        except asyncio.CancelledError:
            if turn is not None:
                turn.give_up()  # nobody awaits it now: it must not start later
            raise
        finally:
            if patience is not None:
                patience.cancel()

    def _submit(self, work: Callable[[], T]) -> "asyncio.Future[T]":
        if self._closed:
            raise StoreUnavailable("the SQLite store is closed")
        if self._thread is None:
            self._thread = threading.Thread(target=self._serve, name=self._name, daemon=True)
            self._thread.start()
        loop = asyncio.get_running_loop()
        done: asyncio.Future[T] = loop.create_future()
        self._jobs.put(_Job(work, loop, done))
        return done

    def _serve(self) -> None:
        while (job := self._jobs.get()) is not None:
            job.run()


@dataclass(frozen=True, slots=True)
class _Job:
    """Work for a connection's thread, and the future on the event loop that awaits it."""

    work: Callable[[], object]
    loop: asyncio.AbstractEventLoop
    done: "asyncio.Future[Any]"

    def run(self) -> None:
        try:
            result = self.work()
        except BaseException as exc:
            self._settle(None, exc)
        else:
            self._settle(result, None)

    def _settle(self, result: object, error: BaseException | None) -> None:
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody awaits the result
            self.loop.call_soon_threadsafe(_resolve, self.done, result, error)


def _resolve(done: "asyncio.Future[Any]", result: object, error: BaseException | None) -> None:
    if done.done():  # the awaiting coroutine was cancelled
        return
    if error is None:
        done.set_result(result)
    else:
        done.set_exception(error)


def _give_up(done: "asyncio.Future[Any]", turn: WriteTurn) -> None:
    if not done.done() and turn.give_up():
        done.set_exception(
            StoreUnavailable(f"SQLite: the write did not start within {BUSY_TIMEOUT_SECONDS:g} s")
        )


def _select_one(db: sqlite3.Connection) -> None:
    db.execute("SELECT 1").fetchone()


def _prepare_schema(db: sqlite3.Connection) -> None:
    # Switching to WAL does not wait for the busy timeout, and several processes may be
    # creating the same new file at once: try again until the timeout instead.
    deadline = time.monotonic() + BUSY_TIMEOUT_SECONDS
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            break
        except sqlite3.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    db.execute("PRAGMA synchronous=FULL")
    db.execute("BEGIN IMMEDIATE")
    for statement in _SCHEMA.split(";"):
        if statement.strip():
            db.execute(statement)
    db.execute("COMMIT")


def _prepare_reader(db: sqlite3.Connection) -> None:
    db.execute("PRAGMA query_only=ON")


def _append(
    db: sqlite3.Connection, batches: Mapping[str, Sequence[Draft]]
) -> dict[str, list[Appended] | StoreUnavailable]:
    """One transaction for every video; a SAVEPOINT per video, so an error in one video's
    rows rolls back that video alone. An error that ends the whole transaction raises."""
    created_at = utc_timestamp()
    outcomes: dict[str, list[Appended] | StoreUnavailable] = {}
    db.execute("BEGIN IMMEDIATE")
    try:
        for video_id, drafts in batches.items():
            db.execute("SAVEPOINT video")
            try:
                outcomes[video_id] = _append_video(db, video_id, drafts, created_at)
            except sqlite3.Error as exc:
                if not db.in_transaction:  # SQLite rolled back the whole transaction
                    raise
                db.execute("ROLLBACK TO video")
                log.warning("video %r not stored, the other videos are: %s", video_id, exc)
                outcomes[video_id] = StoreUnavailable(f"SQLite: {exc}")
            db.execute("RELEASE video")
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    return outcomes


def _append_video(
    db: sqlite3.Connection, video_id: str, drafts: Sequence[Draft], created_at: str
) -> list[Appended]:
    stored = _by_idempotency_key(db, video_id, drafts)
    seq = _last_seq(db, video_id)
    results: list[Appended] = []
    rows: list[tuple[str, int, str, str, str, str | None]] = []
    for draft in drafts:
        replay = stored.get(draft.idempotency_key) if draft.idempotency_key else None
        if replay is not None:
            results.append(Appended(replay, created=False))
            continue
        seq += 1
        comment = Comment(video_id, seq, draft.author, draft.message, created_at)
        if draft.idempotency_key:
            stored[draft.idempotency_key] = comment
        rows.append((video_id, seq, draft.author, draft.message, created_at, draft.idempotency_key))
        results.append(Appended(comment, created=True))
    db.executemany(
        "INSERT INTO comments (video_id, seq, author, message, created_at, idempotency_key) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        rows,
    )
    return results


def _by_idempotency_key(
    db: sqlite3.Connection, video_id: str, drafts: Sequence[Draft]
) -> dict[str, Comment]:
    keys = sorted({d.idempotency_key for d in drafts if d.idempotency_key})
    if not keys:
        return {}
    marks = ",".join("?" * len(keys))
    rows = db.execute(
        f"SELECT {_COLUMNS}, idempotency_key FROM comments "
        f"WHERE video_id = ? AND idempotency_key IN ({marks})",
        (video_id, *keys),
    ).fetchall()
    return {row[5]: Comment(*row[:5]) for row in rows}


def _last_seq(db: sqlite3.Connection, video_id: str) -> int:
    row = db.execute("SELECT max(seq) FROM comments WHERE video_id = ?", (video_id,)).fetchone()
    return int(row[0] or 0)


# `json_each` turns the JSON object {video id: known seq} into rows; the subquery's
# max(seq) is one seek to the end of the video's primary-key range.
_VIDEOS_AHEAD = """
SELECT video_id, newest FROM (
    SELECT known.key AS video_id, known.value AS seen,
        (SELECT max(seq) FROM comments WHERE comments.video_id = known.key) AS newest
    FROM json_each(?) AS known
) WHERE newest > seen
"""


def _videos_ahead(db: sqlite3.Connection, known_json: str) -> dict[str, int]:
    return {video_id: int(newest) for video_id, newest in db.execute(_VIDEOS_AHEAD, (known_json,))}


def _comments(db: sqlite3.Connection, sql: str, args: tuple[object, ...]) -> list[Comment]:
    return [Comment(*row) for row in db.execute(sql, args)]
