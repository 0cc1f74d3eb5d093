"""Graceful shutdown: SIGTERM ends streams cleanly so clients resume, and the process exits 0."""

import asyncio
import contextlib
import signal
import socket
import time
from collections.abc import AsyncIterator

import httpx

from livecomments.service import STREAM_END_GRACE
from tests.metrics import value
from tests.server_process import ServerProcess, wait_until
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


@contextlib.asynccontextmanager
async def stalled_viewer(running: ServerProcess) -> AsyncIterator[None]:
    """A viewer that stops reading with about 500 KB unsent, under its 1 MiB limit: not cut
    off, but it will not take the stream's end, so shutdown waits its grace for it."""
    stalled = socket.socket()
    try:
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.connect((running.host, running.port))
        stalled.sendall(b"GET /comments/live/stream HTTP/1.1\r\nHost: x\r\n\r\n")
        async with httpx.AsyncClient(base_url=running.url, timeout=10) as client:
            wait_until(
                lambda: (
                    value(httpx.get(f"{running.url}/metrics").text, "livecomments_streams_open")
                    == 1
                )
            )
            for _ in range(8):
                await asyncio.gather(
                    *(
                        client.post("/comments/live", json={"message": "x" * 500})
                        for _ in range(100)
                    )
                )
        yield
    finally:
        stalled.close()


async def test_sigterm_drops_a_stream_whose_client_does_not_read_its_end(tmp_path):
    """A stalled viewer (not slow enough to be cut off) cannot hold shutdown up: after a
    grace period its connection is dropped and the process still exits cleanly."""
    running = ServerProcess(f"sqlite:///{tmp_path}/c.db").start()
    try:
        async with stalled_viewer(running):
            started = time.monotonic()
            assert await asyncio.to_thread(running.terminate) == 0
            assert time.monotonic() - started < STREAM_END_GRACE + 5
    finally:
        running.kill()
    assert "stopped" in running.log()


async def test_a_post_after_sigterm_on_an_open_connection_is_refused_with_503(tmp_path):
    """While shutdown waits for a stalled stream, a keep-alive client may still send a post:
    the core refuses it (ShuttingDown) and it is answered 503 `shutting_down`, not 500."""
    running = ServerProcess(f"sqlite:///{tmp_path}/c.db").start()
    process = running.process
    assert process is not None
    try:
        async with stalled_viewer(running):
            reader, writer = await asyncio.open_connection(running.host, running.port)
            body = b'{"message": "hello"}'
            post = (
                b"POST /comments/live HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                b"\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
            )
            writer.write(post)
            assert (await reader.readline()).startswith(b"HTTP/1.1 201")
            await reader.readuntil(b"}")  # the rest of the 201: its head and its JSON body
            process.send_signal(signal.SIGTERM)
            await asyncio.sleep(0.5)  # posts are refused now; the stalled stream holds the exit
            writer.write(post)
            assert (await reader.readline()).startswith(b"HTTP/1.1 503")
            assert b'"code":"shutting_down"' in await reader.readuntil(b"}}")
            writer.close()
            assert await asyncio.to_thread(process.wait, STREAM_END_GRACE + 10) == 0
    finally:
        running.kill()
