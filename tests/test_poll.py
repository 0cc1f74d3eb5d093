"""Long-polling over a real server: immediate answers, waiting, timeouts, cancellation."""

import asyncio
import time

import httpx

from tests.conftest import post_comment
from tests.server_process import wait_until


def poll(client, video, **params):
    return client.get(f"/comments/{video}/poll", params=params)


async def test_answers_at_once_when_comments_exist(client, video):
    for i in range(3):
        await post_comment(client, video, f"m{i}")
    started = time.monotonic()
    body = (await poll(client, video, after=1, timeout=20)).json()
    assert time.monotonic() - started < 5
    assert [c["seq"] for c in body["comments"]] == [2, 3]
    assert body["cursor"] == 3


async def test_waits_for_the_next_comment(client, video):
    await post_comment(client, video, "old")
    waiting = asyncio.create_task(poll(client, video, after=1, timeout=20))
    await asyncio.sleep(0.3)
    assert not waiting.done()
    posted = await post_comment(client, video, "new")
    body = (await asyncio.wait_for(waiting, 5)).json()
    assert body == {"comments": [posted], "cursor": 2}


async def test_timeout_returns_empty_list_with_same_cursor(client, video):
    await post_comment(client, video, "only")
    started = time.monotonic()
    response = await poll(client, video, after=1, timeout=0.5)
    assert 0.4 < time.monotonic() - started < 5
    assert response.json() == {"comments": [], "cursor": 1}


async def test_without_after_waits_for_newer_comments(client, video):
    await post_comment(client, video, "old")
    waiting = asyncio.create_task(poll(client, video, timeout=20))
    await asyncio.sleep(0.3)
    posted = await post_comment(client, video, "new")
    body = (await asyncio.wait_for(waiting, 5)).json()
    assert body == {"comments": [posted], "cursor": 2}


async def test_paging_through_a_backlog_by_cursor(client, video):
    await asyncio.gather(*(post_comment(client, video, f"m{i}") for i in range(250)))
    cursor, seen = 0, list[int]()
    while len(seen) < 250:
        body = (await poll(client, video, after=cursor, timeout=0)).json()
        assert body["comments"], "a backlog page must not be empty"
        seen += [c["seq"] for c in body["comments"]]
        cursor = body["cursor"]
    assert seen == list(range(1, 251))


def waiting_polls(server) -> float:
    metrics = httpx.get(server.url + "/metrics").text
    line = next(
        row for row in metrics.splitlines() if row.startswith("livecomments_polls_waiting ")
    )
    return float(line.split()[1])


async def test_closed_connection_cancels_the_wait(server, video):
    async with httpx.AsyncClient(base_url=server.url) as one_off:
        waiting = asyncio.create_task(poll(one_off, video, timeout=30))
        await asyncio.to_thread(wait_until, lambda: waiting_polls(server) == 1)
        waiting.cancel()
    await asyncio.to_thread(wait_until, lambda: waiting_polls(server) == 0, 3)
