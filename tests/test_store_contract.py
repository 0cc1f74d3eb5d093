"""The `CommentStore` contract, run against every store implementation on a real database."""

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

from livecomments.comment import Draft
from store import CommentStore, StoreUnavailable, open_store

StoreFactory = Callable[[], CommentStore]


@pytest.fixture(params=["sqlite"])
def make_store(request, tmp_path) -> StoreFactory:
    """Makes stores that all open the same database."""
    url = f"sqlite:///{tmp_path}/contract.db"
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
