"""The `CommentStore` contract, run against every store implementation on a real database."""

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable

import pytest

from livecomments.comment import Draft
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


async def test_append_assigns_dense_seq_from_one_in_order(store):
    first = await store.append("v", drafts("a"))
    batch = await store.append("v", drafts("b", "c", "d"))
    assert [r.comment.seq for r in first + batch] == [1, 2, 3, 4]
    assert [r.comment.message for r in first + batch] == ["a", "b", "c", "d"]
    assert all(r.created for r in first + batch)
    assert {r.comment.created_at for r in batch} == {batch[0].comment.created_at}


async def test_videos_are_sequenced_independently(store):
    await store.append("v1", drafts("a", "b"))
    other = await store.append("v2", drafts("c"))
    assert other[0].comment.seq == 1
    assert await store.last_seq("v1") == 2
    assert await store.last_seq("v2") == 1
    assert await store.last_seq("none") == 0


async def test_pages_before_and_after(store):
    await store.append("v", drafts(*[f"m{i}" for i in range(1, 11)]))
    assert [c.seq for c in await store.page_before("v", None, 3)] == [10, 9, 8]
    assert [c.seq for c in await store.page_before("v", 4, 5)] == [3, 2, 1]
    assert [c.seq for c in await store.page_after("v", 0, 3)] == [1, 2, 3]
    assert [c.seq for c in await store.page_after("v", 8, 5)] == [9, 10]
    assert await store.page_after("v", 10, 5) == []
    assert await store.page_before("v", 1, 5) == []
    assert [c.seq for c in await store.page_after("v", 3, 10, before=7)] == [4, 5, 6]
    assert await store.page_after("v", 3, 10, before=4) == []


async def test_idempotency_key_replays_the_stored_comment(store):
    [first] = await store.append("v", drafts("a", key="k"))
    [again] = await store.append("v", drafts("a", key="k"))
    assert again.comment == first.comment
    assert not again.created
    assert await store.last_seq("v") == 1


async def test_idempotency_key_repeated_within_one_batch(store):
    results = await store.append("v", [*drafts("a", key="k"), *drafts("b"), *drafts("a", key="k")])
    assert [(r.comment.seq, r.created) for r in results] == [(1, True), (2, True), (1, False)]


async def test_idempotency_keys_are_per_video(store):
    [a] = await store.append("v1", drafts("a", key="k"))
    [b] = await store.append("v2", drafts("a", key="k"))
    assert a.created
    assert b.created


async def test_committed_comments_survive_reopening(make_store):
    writer = make_store()
    await writer.open()
    await writer.append("v", drafts("kept"))
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
            writer.append("v", drafts(f"w{n}-{i}", f"w{n}-{i}b"))
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
        await closed.append("v", drafts("lost"))


async def test_an_idempotent_replay_inside_a_batch_keeps_the_rest_dense(store):
    [first] = await store.append("v", drafts("a", key="k"))
    results = await store.append("v", [*drafts("b"), *drafts("a", key="k"), *drafts("c")])
    assert [(r.comment.seq, r.created) for r in results] == [(2, True), (1, False), (3, True)]
    assert results[1].comment == first.comment
    assert [c.message for c in await store.page_after("v", 0, 10)] == ["a", "b", "c"]


async def test_writers_racing_with_one_idempotency_key_store_one_comment(make_store):
    writers = [make_store() for _ in range(3)]
    for writer in writers:
        await writer.open()
    try:
        results = await asyncio.gather(*(w.append("v", drafts("a", key="k")) for w in writers))
        outcomes = [result for [result] in results]
        assert sum(r.created for r in outcomes) == 1
        assert {r.comment for r in outcomes} == {outcomes[0].comment}
        assert outcomes[0].comment.seq == 1
        assert await writers[0].last_seq("v") == 1
    finally:
        for writer in writers:
            await writer.close()


# MongoDB only: the optimistic sequencer's retry, and a store that is not there.


@pytest.fixture
def mongo_url(mongo_server) -> str:
    return mongo_server.url(f"t_{uuid.uuid4().hex}")


async def test_mongo_writer_behind_another_retries_and_keeps_seq_dense(mongo_url, caplog):
    caplog.set_level(logging.DEBUG, logger="store.mongo")
    behind, ahead = open_store(mongo_url), open_store(mongo_url)
    await behind.open()
    await ahead.open()
    try:
        await behind.append("v", drafts("a"))  # `behind` now takes 1 for the newest seq
        await ahead.append("v", drafts("b", "c"))
        results = await behind.append("v", drafts("d", "e", "f"))
        assert [r.comment.seq for r in results] == [4, 5, 6]
        assert [c.message for c in await ahead.page_after("v", 0, 10)] == list("abcdef")
        assert any("taken by another writer" in r.getMessage() for r in caplog.records)
    finally:
        await behind.close()
        await ahead.close()


async def test_mongo_store_where_nothing_listens_is_unavailable_within_seconds():
    store = open_store(f"mongodb://127.0.0.1:{free_port()}/t")
    started = time.monotonic()
    with pytest.raises(StoreUnavailable):
        await store.open()
    with pytest.raises(StoreUnavailable):
        await store.append("v", drafts("lost"))
    assert time.monotonic() - started < 10
    await store.close()
    del store
    collect_cancelled_connects()


async def test_mongo_store_fails_while_the_server_is_down_and_resumes_after(tmp_path):
    with FerretDB(tmp_path) as server:
        store = open_store(server.url("t"))
        await store.open()
        try:
            await store.append("v", drafts("before"))
            server.stop()
            with pytest.raises(StoreUnavailable):
                await store.append("v", drafts("while down"))
            server.start()
            [after] = await store.append("v", drafts("after"))
            assert after.comment.seq == 2
            assert [c.message for c in await store.page_after("v", 0, 10)] == ["before", "after"]
        finally:
            await store.close()
