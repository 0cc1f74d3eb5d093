"""Posting and history over a real server: 201 after commit, dense seq, paging, idempotency."""

import asyncio

import httpx

from tests.conftest import post_comment
from tests.metrics import scrape
from tests.server_process import ServerProcess
from tests.sse_client import open_stream


async def test_post_returns_the_stored_comment(client, video):
    response = await client.post(f"/comments/{video}", json={"message": " hello ", "author": "ann"})
    assert response.status_code == 201
    comment = response.json()
    assert comment["video_id"] == video
    assert comment["seq"] == 1
    assert comment["author"] == "ann"
    assert comment["message"] == "hello"
    assert comment["created_at"].endswith("Z")
    history = (await client.get(f"/comments/{video}")).json()
    assert history["comments"] == [comment]


async def test_author_defaults_to_anonymous(client, video):
    comment = await post_comment(client, video, "hi")
    assert comment["author"] == "anonymous"


async def test_concurrent_posts_get_dense_unique_seq(client, video):
    results = await asyncio.gather(*(post_comment(client, video, f"m{i}") for i in range(60)))
    assert sorted(c["seq"] for c in results) == list(range(1, 61))
    page = (await client.get(f"/comments/{video}", params={"after": 0, "limit": 200})).json()
    assert [c["seq"] for c in page["comments"]] == list(range(1, 61))
    assert {c["message"] for c in page["comments"]} == {f"m{i}" for i in range(60)}


async def test_videos_have_independent_sequences(client, video):
    other = video + "-other"
    await post_comment(client, video, "a")
    assert (await post_comment(client, other, "b"))["seq"] == 1
    assert (await post_comment(client, video, "c"))["seq"] == 2


async def test_history_newest_page_then_scroll_back(client, video):
    for i in range(1, 8):
        await post_comment(client, video, f"m{i}")
    newest = (await client.get(f"/comments/{video}", params={"limit": 3})).json()
    assert [c["seq"] for c in newest["comments"]] == [7, 6, 5]
    assert newest["next_cursor"] == 5
    older = (await client.get(f"/comments/{video}", params={"before": 5, "limit": 3})).json()
    assert [c["seq"] for c in older["comments"]] == [4, 3, 2]
    assert older["next_cursor"] == 2
    oldest = (await client.get(f"/comments/{video}", params={"before": 2, "limit": 3})).json()
    assert [c["seq"] for c in oldest["comments"]] == [1]
    assert oldest["next_cursor"] is None


async def test_history_after_catches_up_oldest_first(client, video):
    for i in range(1, 6):
        await post_comment(client, video, f"m{i}")
    page = (await client.get(f"/comments/{video}", params={"after": 1, "limit": 2})).json()
    assert [c["seq"] for c in page["comments"]] == [2, 3]
    assert page["next_cursor"] == 3
    rest = (await client.get(f"/comments/{video}", params={"after": 3, "limit": 2})).json()
    assert [c["seq"] for c in rest["comments"]] == [4, 5]
    assert rest["next_cursor"] is None


async def test_paging_back_is_stable_while_comments_arrive(client, video):
    for i in range(1, 6):
        await post_comment(client, video, f"m{i}")
    first = (await client.get(f"/comments/{video}", params={"limit": 2})).json()
    for i in range(6, 9):
        await post_comment(client, video, f"m{i}")
    second = (
        await client.get(f"/comments/{video}", params={"before": first["next_cursor"], "limit": 2})
    ).json()
    assert [c["seq"] for c in first["comments"] + second["comments"]] == [5, 4, 3, 2]


async def test_empty_video_has_empty_history(client, video):
    page = (await client.get(f"/comments/{video}")).json()
    assert page == {"comments": [], "next_cursor": None}


async def test_idempotent_retry_returns_the_first_comment(client, video):
    headers = {"Idempotency-Key": "retry-1"}
    first = await client.post(f"/comments/{video}", json={"message": "once"}, headers=headers)
    again = await client.post(f"/comments/{video}", json={"message": "once"}, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    history = (await client.get(f"/comments/{video}")).json()
    assert [c["message"] for c in history["comments"]] == ["once"]


async def test_concurrent_retries_with_one_key_store_one_comment(client, video):
    headers = {"Idempotency-Key": "same-key"}
    responses = await asyncio.gather(
        *(
            client.post(f"/comments/{video}", json={"message": "x"}, headers=headers)
            for _ in range(10)
        )
    )
    assert {r.status_code for r in responses} == {201}
    assert {r.json()["seq"] for r in responses} == {1}
    history = (await client.get(f"/comments/{video}")).json()
    assert len(history["comments"]) == 1


async def test_idempotency_key_is_per_video(client, video):
    headers = {"Idempotency-Key": "k"}
    a = await client.post(f"/comments/{video}", json={"message": "x"}, headers=headers)
    b = await client.post(f"/comments/{video}-2", json={"message": "x"}, headers=headers)
    assert a.json()["video_id"] != b.json()["video_id"]


async def test_reusing_a_key_for_another_comment_is_refused(client, video):
    headers = {"Idempotency-Key": "k2"}
    await client.post(f"/comments/{video}", json={"message": "first"}, headers=headers)
    response = await client.post(f"/comments/{video}", json={"message": "second"}, headers=headers)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "idempotency_key_reused"
    history = (await client.get(f"/comments/{video}")).json()
    assert [c["message"] for c in history["comments"]] == ["first"]


async def test_health_and_readiness(client):
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"ready": True, "checks": {"store": "ok", "bus": "ok"}}


async def test_demo_page_is_served(client):
    response = await client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "/static/app.js" in response.text
    script = await client.get("/static/app.js")
    assert script.status_code == 200


async def test_history_between_two_cursors_reads_the_range(client, video):
    for i in range(1, 11):
        await post_comment(client, video, f"m{i}")
    page = (
        await client.get(f"/comments/{video}", params={"after": 2, "before": 9, "limit": 4})
    ).json()
    assert [c["seq"] for c in page["comments"]] == [3, 4, 5, 6]
    assert page["next_cursor"] == 6
    rest = (await client.get(f"/comments/{video}", params={"after": 6, "before": 9})).json()
    assert [c["seq"] for c in rest["comments"]] == [7, 8]
    assert rest["next_cursor"] is None


async def history_sources(server) -> tuple[float, float]:
    """History pages answered so far from rings and from the store."""
    return (
        await scrape(server.url, "livecomments_history_pages_total", source="ring"),
        await scrape(server.url, "livecomments_history_pages_total", source="store"),
    )


async def test_an_active_videos_newest_page_comes_from_its_ring(server, client, video):
    viewer = await open_stream(server.host, server.port, f"/comments/{video}/stream")
    try:
        posted = [await post_comment(client, video, f"m{i}") for i in range(5)]
        await viewer.events(5)  # delivered, so in the ring
        ring_before, store_before = await history_sources(server)
        newest = (await client.get(f"/comments/{video}", params={"limit": 3})).json()
        ring_after, store_after = await history_sources(server)
        from_store = (await client.get(f"/comments/{video}", params={"before": 6})).json()
    finally:
        viewer.close()
    assert (ring_after - ring_before, store_after - store_before) == (1, 0)
    assert newest == {"comments": posted[:1:-1], "next_cursor": 3}
    assert from_store["comments"][:3] == newest["comments"]


async def test_an_unwatched_videos_history_comes_from_the_store(server, client, video):
    posted = [await post_comment(client, video, f"m{i}") for i in range(3)]
    ring_before, store_before = await history_sources(server)
    newest = (await client.get(f"/comments/{video}")).json()
    ring_after, store_after = await history_sources(server)
    assert (ring_after - ring_before, store_after - store_before) == (0, 1)
    assert newest == {"comments": posted[::-1], "next_cursor": None}


async def test_history_reads_can_be_limited_per_address(tmp_path, video):
    args = ("--read-rate", "1", "--read-burst", "2")
    with ServerProcess(f"sqlite:///{tmp_path}/c.db", *args) as running:
        async with httpx.AsyncClient(base_url=running.url) as client:
            statuses = [(await client.get(f"/comments/{video}")).status_code for _ in range(3)]
            refused = await client.get(f"/comments/{video}", params={"before": 5})
    assert statuses == [200, 200, 429]
    assert refused.json()["error"]["code"] == "rate_limited"
    assert int(refused.headers["Retry-After"]) >= 1
