"""The `CommentStore` contract, run against every store implementation on a real database."""

import asyncio
import contextlib
import logging
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Callable

import pytest
from pymongo import AsyncMongoClient
from pymongo.errors import AutoReconnect

from livecomments.comment import Appended, Draft
from store import CommentStore, StoreUnavailable, open_store
from tests.mongo_server import FerretDB, collect_cancelled_connects
from tests.ports import free_port

StoreFactory = Callable[[], CommentStore]


@pytest.fixture(params=["sqlite", "mongodb"])
def make_store(request, tmp_path) -> StoreFactory:
    """Makes stores that all open the same database (a fresh one for each test)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/contract.db"
    else:
        url = request.getfixturevalue("mongo_server").url(f"t_{uuid.uuid4().hex}")
    return lambda: open_store(url)


@pytest.fixture
async def store(make_store) -> AsyncIterator[CommentStore]:
    opened = make_store()
    await opened.open()
    yield opened
    await opened.close()


def drafts(*messages: str, key: str | None = None) -> list[Draft]:
    return [Draft(message=m, author="ann", idempotency_key=key) for m in messages]


async def append_one(store: CommentStore, video_id: str, batch: list[Draft]) -> list[Appended]:
    """Append to one video; its own error is raised like the whole commit's."""
    outcome = (await store.append({video_id: batch}))[video_id]
    if isinstance(outcome, StoreUnavailable):
        raise outcome
    return outcome


async def test_append_assigns_dense_seq_from_one_in_order(store):
    first = await append_one(store, "v", drafts("a"))
    batch = await append_one(store, "v", drafts("b", "c", "d"))
    assert [r.comment.seq for r in first + batch] == [1, 2, 3, 4]
    assert [r.comment.message for r in first + batch] == ["a", "b", "c", "d"]
    assert all(r.created for r in first + batch)
    assert {r.comment.created_at for r in batch} == {batch[0].comment.created_at}


async def test_videos_are_sequenced_independently(store):
    await append_one(store, "v1", drafts("a", "b"))
    other = await append_one(store, "v2", drafts("c"))
    assert other[0].comment.seq == 1
    assert await store.last_seq("v1") == 2
    assert await store.last_seq("v2") == 1
    assert await store.last_seq("none") == 0


async def test_pages_before_and_after(store):
    await append_one(store, "v", drafts(*[f"m{i}" for i in range(1, 11)]))
    assert [c.seq for c in await store.page_before("v", None, 3)] == [10, 9, 8]
    assert [c.seq for c in await store.page_before("v", 4, 5)] == [3, 2, 1]
    assert [c.seq for c in await store.page_after("v", 0, 3)] == [1, 2, 3]
    assert [c.seq for c in await store.page_after("v", 8, 5)] == [9, 10]
    assert await store.page_after("v", 10, 5) == []
    assert await store.page_before("v", 1, 5) == []
    assert [c.seq for c in await store.page_after("v", 3, 10, before=7)] == [4, 5, 6]
    assert await store.page_after("v", 3, 10, before=4) == []


async def test_idempotency_key_replays_the_stored_comment(store):
    [first] = await append_one(store, "v", drafts("a", key="k"))
    [again] = await append_one(store, "v", drafts("a", key="k"))
    assert again.comment == first.comment
    assert not again.created
    assert await store.last_seq("v") == 1


async def test_idempotency_key_repeated_within_one_batch(store):
    results = await append_one(
        store, "v", [*drafts("a", key="k"), *drafts("b"), *drafts("a", key="k")]
    )
    assert [(r.comment.seq, r.created) for r in results] == [(1, True), (2, True), (1, False)]


async def test_idempotency_keys_are_per_video(store):
    [a] = await append_one(store, "v1", drafts("a", key="k"))
    [b] = await append_one(store, "v2", drafts("a", key="k"))
    assert a.created
    assert b.created


async def test_committed_comments_survive_reopening(make_store):
    writer = make_store()
    await writer.open()
    await append_one(writer, "v", drafts("kept"))
    await writer.close()
    reader = make_store()
    await reader.open()
    try:
        [comment] = await reader.page_after("v", 0, 10)
        assert comment.message == "kept"
    finally:
        await reader.close()


async def test_concurrent_writers_on_one_database_keep_seq_dense(make_store):
    writers = [make_store() for _ in range(3)]
    for writer in writers:
        await writer.open()
    try:
        appends = [
            append_one(writer, "v", drafts(f"w{n}-{i}", f"w{n}-{i}b"))
            for i in range(20)
            for n, writer in enumerate(writers)
        ]
        results = await asyncio.gather(*appends)
        seqs = sorted(r.comment.seq for batch in results for r in batch)
        assert seqs == list(range(1, 121))
        stored = await writers[0].page_after("v", 0, 200)
        assert [c.seq for c in stored] == seqs
    finally:
        for writer in writers:
            await writer.close()


async def test_a_closed_store_is_unavailable(make_store):
    closed = make_store()
    await closed.open()
    await closed.ping()
    await closed.close()
    with pytest.raises(StoreUnavailable):
        await closed.ping()
    with pytest.raises(StoreUnavailable):
        await append_one(closed, "v", drafts("lost"))


async def test_an_idempotent_replay_inside_a_batch_keeps_the_rest_dense(store):
    [first] = await append_one(store, "v", drafts("a", key="k"))
    results = await append_one(store, "v", [*drafts("b"), *drafts("a", key="k"), *drafts("c")])
    assert [(r.comment.seq, r.created) for r in results] == [(2, True), (1, False), (3, True)]
    assert results[1].comment == first.comment
    assert [c.message for c in await store.page_after("v", 0, 10)] == ["a", "b", "c"]


async def test_writers_racing_with_one_idempotency_key_store_one_comment(make_store):
    writers = [make_store() for _ in range(3)]
    for writer in writers:
        await writer.open()
    try:
        results = await asyncio.gather(*(append_one(w, "v", drafts("a", key="k")) for w in writers))
        outcomes = [result for [result] in results]
        assert sum(r.created for r in outcomes) == 1
        assert {r.comment for r in outcomes} == {outcomes[0].comment}
        assert outcomes[0].comment.seq == 1
        assert await writers[0].last_seq("v") == 1
    finally:
        for writer in writers:
            await writer.close()


# Many videos in one append, and the completeness check of many videos.


def settled(outcomes: dict[str, list[Appended] | StoreUnavailable]) -> dict[str, list[Appended]]:
    """The outcomes of an append that every video must have survived."""
    failed = {video: error for video, error in outcomes.items() if isinstance(error, Exception)}
    assert not failed
    return {video: results for video, results in outcomes.items() if isinstance(results, list)}


async def test_one_append_sequences_each_video_from_its_own_newest(store):
    await append_one(store, "v1", drafts("a", "b"))
    await append_one(store, "v3", drafts("c", "d", "e"))
    outcomes = settled(
        await store.append({"v1": drafts("f", "g"), "v2": drafts("h"), "v3": drafts("i", "j", "k")})
    )
    assert list(outcomes) == ["v1", "v2", "v3"]
    seqs = {video: [r.comment.seq for r in results] for video, results in outcomes.items()}
    assert seqs == {"v1": [3, 4], "v2": [1], "v3": [4, 5, 6]}
    for video, results in outcomes.items():
        assert all(r.created and r.comment.video_id == video for r in results)
    assert [c.message for c in await store.page_after("v1", 0, 10)] == list("abfg")
    assert [c.message for c in await store.page_after("v2", 0, 10)] == ["h"]
    assert [c.message for c in await store.page_after("v3", 0, 10)] == list("cdeijk")


async def test_idempotency_keys_replay_per_video_in_one_append(store):
    [first] = await append_one(store, "v1", drafts("a", key="k"))
    outcomes = settled(
        await store.append(
            {
                "v1": [*drafts("a", key="k"), *drafts("b")],
                "v2": [*drafts("a", key="k"), *drafts("c"), *drafts("a", key="k")],
            }
        )
    )
    assert [(r.comment.seq, r.created) for r in outcomes["v1"]] == [(1, False), (2, True)]
    assert outcomes["v1"][0].comment == first.comment
    assert [(r.comment.seq, r.created) for r in outcomes["v2"]] == [
        (1, True),
        (2, True),
        (1, False),
    ]
    assert outcomes["v2"][2].comment == outcomes["v2"][0].comment
    assert outcomes["v2"][0].comment.video_id == "v2"
    assert await store.last_seq("v1") == 2
    assert await store.last_seq("v2") == 2


async def test_writers_appending_overlapping_videos_keep_every_video_dense(make_store):
    """Three stores ("processes") on one database, each appending to two of the same
    three videos at once: every video's seqs are 1..n with no duplicate."""
    videos = ["x", "y", "z"]
    writers = [make_store() for _ in range(3)]
    for writer in writers:
        await writer.open()
    try:
        appends = [
            writer.append(
                {
                    video: drafts(f"{video}-w{n}-{i}", f"{video}-w{n}-{i}b")
                    for video in videos
                    if video != videos[n]
                }
            )
            for i in range(10)
            for n, writer in enumerate(writers)
        ]
        outcomes = [settled(outcome) for outcome in await asyncio.gather(*appends)]
        for video in videos:
            acknowledged = sorted(
                r.comment.seq for outcome in outcomes for r in outcome.get(video, [])
            )
            assert acknowledged == list(range(1, 41))
            stored = await writers[0].page_after(video, 0, 100)
            assert [c.seq for c in stored] == acknowledged
            assert len({c.message for c in stored}) == 40
    finally:
        for writer in writers:
            await writer.close()


async def test_videos_ahead_are_those_with_comments_past_what_the_caller_has(store):
    await store.append({"behind": drafts("a", "b", "c"), "level": drafts("a"), "new": drafts("a")})
    known = {"behind": 1, "level": 1, "past": 7, "new": 0, "empty": 0}
    assert await store.videos_ahead(known) == {"behind": 3, "new": 1}
    assert await store.videos_ahead({}) == {}


async def test_videos_ahead_checks_more_than_one_query_of_videos(make_store):
    videos = [f"v{n}" for n in range(2500)]
    writer, checker = make_store(), make_store()
    await writer.open()
    await checker.open()
    try:
        settled(await writer.append({video: drafts("a") for video in videos}))
        known = {video: n % 2 for n, video in enumerate(videos)}  # every other one has it
        known["never-written"] = 0
        ahead = await checker.videos_ahead(known)
        assert ahead == {video: 1 for n, video in enumerate(videos) if n % 2 == 0}
    finally:
        await writer.close()
        await checker.close()


async def assert_one_video_failed_alone(store: CommentStore) -> None:
    """Append to "ok1", "broken", "ok2" (which the caller made fail): "broken" gets the
    error, the others commit, and the store keeps working for every video."""
    await append_one(store, "ok1", drafts("first"))
    outcomes = await store.append(
        {"ok1": drafts("a", "b"), "broken": drafts("fine", "refused"), "ok2": drafts("c")}
    )
    assert isinstance(outcomes["broken"], StoreUnavailable)
    assert outcomes["ok1"] == [
        Appended(c, created=True) for c in await store.page_after("ok1", 1, 10)
    ]
    assert [c.message for c in await store.page_after("ok1", 0, 10)] == ["first", "a", "b"]
    assert [c.message for c in await store.page_after("ok2", 0, 10)] == ["c"]
    [after] = await append_one(store, "ok2", drafts("d"))
    assert after.comment.seq == 2


# SQLite only: a video that fails alone.


@contextlib.asynccontextmanager
async def sqlite_store_with_trigger(tmp_path, trigger: str) -> AsyncIterator[CommentStore]:
    """An open SQLite store whose database has `trigger`, created behind the store's back."""
    sqlite_path = tmp_path / "refusing.db"
    store = open_store(f"sqlite:///{sqlite_path}")
    await store.open()
    try:
        with contextlib.closing(sqlite3.connect(sqlite_path)) as db:
            db.execute(trigger)
        yield store
    finally:
        await store.close()


async def test_sqlite_video_whose_rows_fail_rolls_back_alone(tmp_path):
    async with sqlite_store_with_trigger(
        tmp_path,
        "CREATE TRIGGER refuse_broken BEFORE INSERT ON comments "
        "WHEN NEW.video_id = 'broken' AND NEW.message = 'refused' "
        "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END",
    ) as store:
        await assert_one_video_failed_alone(store)
        assert await store.page_after("broken", 0, 10) == []  # "fine" rolled back with it


async def test_sqlite_error_that_ends_the_transaction_fails_the_whole_append(tmp_path):
    async with sqlite_store_with_trigger(
        tmp_path,
        "CREATE TRIGGER roll_back_all BEFORE INSERT ON comments "
        "WHEN NEW.video_id = 'broken' BEGIN SELECT RAISE(ROLLBACK, 'all of it'); END",
    ) as store:
        with pytest.raises(StoreUnavailable):
            await store.append({"ok": drafts("a"), "broken": drafts("b")})
        assert await store.last_seq("ok") == 0
        [after] = await append_one(store, "ok", drafts("c"))
        assert after.comment.seq == 1


# MongoDB only: the optimistic sequencer's retry, and a store that is not there.


@pytest.fixture
def mongo_url(mongo_server) -> str:
    return mongo_server.url(f"t_{uuid.uuid4().hex}")


@pytest.fixture
async def mongo_writers(mongo_url) -> AsyncIterator[tuple[CommentStore, CommentStore]]:
    """Two open stores on one MongoDB database, as two processes would have:
    (`behind`, `ahead`)."""
    behind, ahead = open_store(mongo_url), open_store(mongo_url)
    await behind.open()
    await ahead.open()
    yield behind, ahead
    await behind.close()
    await ahead.close()


async def test_mongo_writer_behind_another_retries_and_keeps_seq_dense(mongo_writers, caplog):
    caplog.set_level(logging.DEBUG, logger="store.mongo")
    behind, ahead = mongo_writers
    await append_one(behind, "v", drafts("a"))  # `behind` now takes 1 for the newest seq
    await append_one(ahead, "v", drafts("b", "c"))
    results = await append_one(behind, "v", drafts("d", "e", "f"))
    assert [r.comment.seq for r in results] == [4, 5, 6]
    assert [c.message for c in await ahead.page_after("v", 0, 10)] == list("abcdef")
    assert any("taken by another writer" in r.getMessage() for r in caplog.records)


async def test_mongo_store_where_nothing_listens_is_unavailable_within_seconds():
    store = open_store(f"mongodb://127.0.0.1:{free_port()}/t")
    started = time.monotonic()
    with pytest.raises(StoreUnavailable):
        await store.open()
    with pytest.raises(StoreUnavailable):
        await append_one(store, "v", drafts("lost"))
    assert time.monotonic() - started < 10
    await store.close()
    del store
    collect_cancelled_connects()


async def test_mongo_store_fails_while_the_server_is_down_and_resumes_after(tmp_path):
    with FerretDB(tmp_path) as server:
        store = open_store(server.url("t"))
        await store.open()
        try:
            await append_one(store, "v", drafts("before"))
            server.stop()
            with pytest.raises(StoreUnavailable):
                await append_one(store, "v", drafts("while down"))
            server.start()
            [after] = await append_one(store, "v", drafts("after"))
            assert after.comment.seq == 2
            assert [c.message for c in await store.page_after("v", 0, 10)] == ["before", "after"]
        finally:
            await store.close()


async def test_mongo_writer_behind_on_one_video_of_several_retries_only_the_rest(
    mongo_writers, caplog
):
    caplog.set_level(logging.DEBUG, logger="store.mongo")
    behind, ahead = mongo_writers
    settled(await behind.append({"v1": drafts("a"), "v2": drafts("a"), "v3": drafts("a")}))
    await append_one(ahead, "v2", drafts("b", "c"))  # `behind` still takes 1 for v2
    outcomes = settled(
        await behind.append({"v1": drafts("d"), "v2": drafts("d", "e"), "v3": drafts("d")})
    )
    seqs = {video: [r.comment.seq for r in results] for video, results in outcomes.items()}
    assert list(seqs.items()) == [("v1", [2]), ("v2", [4, 5]), ("v3", [2])]
    assert [c.message for c in await ahead.page_after("v2", 0, 10)] == list("abcde")
    assert sum("taken by another writer" in r.getMessage() for r in caplog.records) == 1


async def test_mongo_video_refused_for_no_known_reason_fails_alone(mongo_url):
    """A unique index this store knows nothing of refuses one of "broken"'s comments:
    neither a taken seq nor a stored key explains it."""
    client: AsyncMongoClient = AsyncMongoClient(mongo_url)
    store = open_store(mongo_url)
    await store.open()
    try:
        comments = client.get_default_database().get_collection("comments")
        await comments.create_index("message", unique=True, name="test_unique_message")
        await comments.insert_one({"video_id": "elsewhere", "seq": 1, "message": "refused"})
        await assert_one_video_failed_alone(store)
    finally:
        await store.close()
        await client.close()


async def test_mongo_driver_error_after_a_round_keeps_the_videos_it_committed(
    mongo_writers, monkeypatch
):
    """`x` commits in the first round; `y` hits another writer's seq, and the read that would
    renumber it fails (the connection drops). `x`'s posts are stored and must be answered
    so, not 503 (a retry without a key would store them twice); only `y` fails."""
    behind, ahead = mongo_writers
    settled(await behind.append({"x": drafts("x0"), "y": drafts("y0")}))
    await append_one(ahead, "y", drafts("y1"))  # `behind` still takes 2 for y

    async def connection_dropped(video_id: str) -> int:
        raise AutoReconnect("connection dropped")

    monkeypatch.setattr(behind, "_read_newest", connection_dropped)
    outcomes = await behind.append({"x": drafts("x1", "x2"), "y": drafts("y2")})
    x, y = outcomes["x"], outcomes["y"]
    assert not isinstance(x, StoreUnavailable)
    assert [(r.comment.seq, r.created) for r in x] == [(2, True), (3, True)]
    assert isinstance(y, StoreUnavailable)
    assert [c.message for c in await ahead.page_after("x", 0, 10)] == ["x0", "x1", "x2"]
