"""Graceful shutdown: SIGTERM ends streams cleanly so clients resume, and the process exits 0."""

import asyncio

import httpx

from tests.server_process import ServerProcess
from tests.sse_client import open_stream


async def test_sigterm_ends_streams_and_polls_then_exits_cleanly(tmp_path):
    store = f"sqlite:///{tmp_path}/c.db"
    running = ServerProcess(store).start()
    try:
        async with httpx.AsyncClient(base_url=running.url, timeout=10) as client:
            await client.post("/comments/live", json={"message": "before"})
            sse = await open_stream(running.host, running.port, "/comments/live/stream?last_id=0")
            assert (await sse.next_event()).id == "1"
            waiting = asyncio.create_task(client.get("/comments/live/poll", params={"after": 1}))
            await asyncio.sleep(0.3)
            exit_code = await asyncio.to_thread(running.terminate)
            assert exit_code == 0
            assert await sse.read_until_end(seconds=5) == []  # a clean end: the client reconnects
            assert sse.ended, "the chunked response must be terminated, not cut"
            poll = await asyncio.wait_for(waiting, 5)
            assert poll.json() == {"comments": [], "cursor": 1}
            sse.close()
    finally:
        running.kill()
    assert "stopped" in running.log()

    # The next instance on the same store resumes where the client left off.
    with ServerProcess(store) as restarted:
        async with httpx.AsyncClient(base_url=restarted.url) as client:
            await client.post("/comments/live", json={"message": "after"})
            sse = await open_stream(
                restarted.host, restarted.port, "/comments/live/stream", {"Last-Event-ID": "1"}
            )
            assert (await sse.next_event()).id == "2"
            sse.close()
