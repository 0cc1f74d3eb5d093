"""A store that cannot commit gives 503 JSON, never a false 201, and service resumes by itself.

Also: how the service's own SQLite writers line up (store/write_lock.py)."""

import asyncio
import contextlib
import fcntl
import os
import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx

from livecomments.comment import Draft
from store.sqlite import SQLiteStore
from store.write_lock import WriteTurn
from tests.server_process import ServerProcess


async def test_locked_store_answers_503_and_loses_nothing(tmp_path):
    path = tmp_path / "c.db"
    with ServerProcess(f"sqlite:///{path}") as running:
        async with httpx.AsyncClient(base_url=running.url, timeout=30) as client:
            first = await client.post("/comments/v", json={"message": "before"})
            assert first.status_code == 201
            blocker = sqlite3.connect(path, isolation_level=None)
            blocker.execute("BEGIN EXCLUSIVE")  # another process holds the write lock
            try:
                refused = await client.post("/comments/v", json={"message": "while locked"})
            finally:
                blocker.execute("ROLLBACK")
                blocker.close()
            assert refused.status_code == 503
            assert refused.headers["content-type"].startswith("application/json")
            assert refused.json()["error"]["code"] == "store_unavailable"
            after = await client.post("/comments/v", json={"message": "after"})
            assert after.status_code == 201
            assert after.json()["seq"] == 2
            history = (await client.get("/comments/v", params={"after": 0})).json()
            assert [c["message"] for c in history["comments"]] == ["before", "after"]


@contextlib.contextmanager
def writers_lock_held(database: Path) -> Iterator[None]:
    """Hold the lock that lines up the service's SQLite writers, as a stuck writer would."""
    with open(f"{database}-lock", "a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@contextlib.asynccontextmanager
async def one_comment_posted(path: Path) -> AsyncIterator[tuple[ServerProcess, httpx.AsyncClient]]:
    """A server on the SQLite file `path` whose video "v" holds one comment, "a"."""
    with ServerProcess(f"sqlite:///{path}") as running:
        async with httpx.AsyncClient(base_url=running.url, timeout=30) as client:
            assert (await client.post("/comments/v", json={"message": "a"})).status_code == 201
            yield running, client


async def test_a_post_waits_its_turn_behind_another_writer(tmp_path):
    path = tmp_path / "c.db"
    async with one_comment_posted(path) as (_, client):
        with writers_lock_held(path):
            post = asyncio.ensure_future(client.post("/comments/v", json={"message": "b"}))
            await asyncio.sleep(0.5)
            assert not post.done()  # waiting for the lock, not failing
        answer = await post
        assert answer.status_code == 201
        assert answer.json()["seq"] == 2


async def test_a_writer_stuck_holding_the_lock_gives_503_and_never_a_late_commit(tmp_path):
    path = tmp_path / "c.db"
    async with one_comment_posted(path) as (_, client):
        with writers_lock_held(path):
            refused = await client.post("/comments/v", json={"message": "given up"})
            assert refused.status_code == 503
            assert refused.json()["error"]["code"] == "store_unavailable"
        after = await client.post("/comments/v", json={"message": "after"})
        assert after.status_code == 201
        assert after.json()["seq"] == 2
        history = (await client.get("/comments/v", params={"after": 0})).json()
        assert [c["message"] for c in history["comments"]] == ["a", "after"]


async def test_readiness_fails_while_another_writer_keeps_the_lock(tmp_path):
    path = tmp_path / "c.db"
    async with one_comment_posted(path) as (_, client):
        with writers_lock_held(path):
            stuck = await client.get("/readyz")
            assert stuck.status_code == 503
            assert stuck.json()["checks"]["store"].startswith("unavailable"), stuck.json()
        assert (await client.get("/readyz")).status_code == 200
        answer = await client.post("/comments/v", json={"message": "b"})
        assert answer.json()["seq"] == 2  # the readiness probes wrote nothing


async def test_a_writer_stuck_holding_the_lock_does_not_hold_up_shutdown(tmp_path):
    path = tmp_path / "c.db"
    async with one_comment_posted(path) as (running, client):
        with writers_lock_held(path):
            post = asyncio.ensure_future(client.post("/comments/v", json={"message": "b"}))
            await asyncio.sleep(0.3)
            assert await asyncio.to_thread(running.terminate, 30) == 0
            assert (await post).status_code == 503
    with contextlib.closing(sqlite3.connect(path)) as db:
        assert db.execute("SELECT message FROM comments").fetchall() == [("a",)]


async def test_a_lock_file_that_cannot_be_opened_gives_503(tmp_path):
    path = tmp_path / "c.db"
    os.mkdir(f"{path}-lock")  # not a file: open() fails
    with ServerProcess(f"sqlite:///{path}") as running:
        async with httpx.AsyncClient(base_url=running.url, timeout=30) as client:
            refused = await client.post("/comments/v", json={"message": "a"})
            assert refused.status_code == 503
            assert refused.json()["error"]["code"] == "store_unavailable"
            not_ready = await client.get("/readyz")
            assert not_ready.status_code == 503
            assert not_ready.json()["checks"]["store"].startswith("unavailable")


async def test_a_write_cancelled_while_waiting_for_its_turn_never_commits(tmp_path):
    path = tmp_path / "c.db"
    store = SQLiteStore(str(path))
    await store.open()
    try:
        with writers_lock_held(path):
            cancelled = asyncio.ensure_future(store.append({"v": [Draft("cancelled", "a")]}))
            await asyncio.sleep(0.3)  # queued on the writer's thread, waiting for the lock
            cancelled.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await cancelled
        # the writer's thread reaches the cancelled write first, and must skip it
        outcomes = await store.append({"v": [Draft("next", "a")]})
        assert isinstance(outcomes["v"], list)
        [appended] = outcomes["v"]
        assert (appended.comment.seq, appended.comment.message) == (1, "next")
    finally:
        await store.close()


def test_a_write_turn_is_either_started_or_given_up():
    started = WriteTurn()
    assert started.start()
    assert not started.give_up()
    assert started.start()  # still started: the writer may ask again
    given_up = WriteTurn()
    assert given_up.give_up()
    assert given_up.given_up
    assert not given_up.start()
    assert given_up.give_up()
