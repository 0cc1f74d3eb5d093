"""SSE over a real server, read by a raw client: live delivery, resume, heartbeats, slow viewers."""

import asyncio
import contextlib
import json
import socket
import struct

import httpx
import pytest

from tests.conftest import post_comment
from tests.metrics import total, value
from tests.server_process import ServerProcess, wait_until
from tests.sse_client import open_stream


async def stream(server, video, headers=None, query=""):
    opened = await open_stream(
        server.host, server.port, f"/comments/{video}/stream{query}", headers
    )
    assert opened.status == 200
    return opened


def seqs(events):
    return [int(event.id) for event in events]


async def test_stream_headers_and_retry_hint(server, video):
    sse = await stream(server, video)
    try:
        assert sse.headers["content-type"].startswith("text/event-stream")
        assert sse.headers["cache-control"] == "no-cache"
        assert sse.headers["x-accel-buffering"] == "no"
        with pytest.raises(TimeoutError):
            await sse.next_event(seconds=0.3)
        assert sse.retry is not None
    finally:
        sse.close()


async def test_live_comments_arrive_in_order_as_comment_events(server, client, video):
    sse = await stream(server, video)
    try:
        posted = [await post_comment(client, video, f"m{i}") for i in range(5)]
        events = await sse.events(5)
        assert [event.event for event in events] == ["comment"] * 5
        assert seqs(events) == [1, 2, 3, 4, 5]
        assert [json.loads(event.data) for event in events] == posted
    finally:
        sse.close()


async def test_every_viewer_gets_every_comment(server, client, video):
    viewers = [await stream(server, video) for _ in range(5)]
    try:
        await asyncio.gather(*(post_comment(client, video, f"m{i}") for i in range(30)))
        for viewer in viewers:
            assert seqs(await viewer.events(30)) == list(range(1, 31))
    finally:
        for viewer in viewers:
            viewer.close()


@pytest.mark.parametrize("resume", ["header", "query"])
async def test_resume_after_disconnect_has_no_gap_and_no_duplicate(server, client, video, resume):
    first = await stream(server, video)
    for i in range(3):
        await post_comment(client, video, f"before-{i}")
    seen = await first.events(3)
    first.close()
    for i in range(4):
        await post_comment(client, video, f"missed-{i}")
    last = seen[-1].id
    if resume == "header":
        second = await stream(server, video, headers={"Last-Event-ID": last})
    else:
        second = await stream(server, video, query=f"?last_id={last}")
    try:
        await post_comment(client, video, "after")
        resumed = await second.events(5)
        assert seqs(seen) + seqs(resumed) == list(range(1, 9))
        with pytest.raises(TimeoutError):
            await second.next_event(seconds=0.3)
    finally:
        second.close()


async def test_header_wins_over_query_on_reconnect(server, client, video):
    for i in range(4):
        await post_comment(client, video, f"m{i}")
    sse = await stream(server, video, headers={"Last-Event-ID": "3"}, query="?last_id=1")
    try:
        assert seqs(await sse.events(1)) == [4]
    finally:
        sse.close()


async def test_resume_beyond_the_ring_reads_the_store(tmp_path, video):
    with ServerProcess(f"sqlite:///{tmp_path}/c.db", "--ring-size", "16") as small_ring:
        async with httpx.AsyncClient(base_url=small_ring.url) as client:
            viewer = await stream(small_ring, video)  # keeps the channel and its ring alive
            for i in range(40):
                await post_comment(client, video, f"m{i}")
            assert seqs(await viewer.events(40)) == list(range(1, 41))
            resumed = await stream(small_ring, video, headers={"Last-Event-ID": "2"})
            try:
                assert seqs(await resumed.events(38)) == list(range(3, 41))
            finally:
                resumed.close()
                viewer.close()


async def test_cursor_ahead_of_the_store_starts_at_the_newest(server, client, video):
    await post_comment(client, video, "one")
    sse = await stream(server, video, headers={"Last-Event-ID": "999"})
    try:
        await post_comment(client, video, "two")
        assert seqs(await sse.events(1)) == [2]
    finally:
        sse.close()


async def test_heartbeats_keep_an_idle_stream_open(server, video):
    sse = await stream(server, video)  # the server fixture beats every 0.5 s
    try:
        with pytest.raises(TimeoutError):
            await sse.next_event(seconds=1.3)
        assert sse.comments.count("heartbeat") >= 2
    finally:
        sse.close()


async def test_slow_viewer_is_cut_off_and_catches_up_by_resuming(tmp_path, video):
    args = ("--viewer-buffer", "65536")
    with ServerProcess(f"sqlite:///{tmp_path}/c.db", *args) as small_buffer:
        async with httpx.AsyncClient(base_url=small_buffer.url, timeout=30) as client:
            slow = await open_stream(
                small_buffer.host,
                small_buffer.port,
                f"/comments/{video}/stream",
                receive_buffer=4096,
            )
            healthy = await stream(small_buffer, video)
            total = 1500
            healthy_reading = asyncio.create_task(healthy.events(total))
            rss_before = small_buffer.rss_bytes()
            message = "x" * 500
            for start in range(0, total, 100):
                await asyncio.gather(
                    *(post_comment(client, video, message) for _ in range(start, start + 100))
                )
            assert seqs(await healthy_reading) == list(range(1, total + 1))
            rss_growth = small_buffer.rss_bytes() - rss_before

            received = await slow.read_until_end()  # the server closed the stream
            assert seqs(received) == list(range(1, len(received) + 1))
            assert len(received) < total
            metrics = (await client.get("/metrics")).text
            assert "livecomments_viewers_cut_off_total 1.0" in metrics

            resumed = await stream(small_buffer, video, headers={"Last-Event-ID": received[-1].id})
            rest = await resumed.events(total - len(received))
            assert seqs(received) + seqs(rest) == list(range(1, total + 1))
            # ~1 MB went to the slow viewer's connection; bounded, it never holds it all.
            assert rss_growth < 8 * 1024 * 1024, rss_growth
            for sse in (slow, healthy, resumed):
                sse.close()


async def test_a_viewer_that_stalls_while_catching_up_is_cut_off_and_resumes(tmp_path, video):
    """Catch-up waits for the client, so its unsent bytes never pass --viewer-buffer: a
    client that takes nothing for --request-timeout is cut off instead of held forever."""
    with ServerProcess(f"sqlite:///{tmp_path}/c.db", "--request-timeout", "1") as running:
        async with httpx.AsyncClient(base_url=running.url, timeout=30) as client:
            total = 1000  # ~600 KB of history: more than the kernel's buffers take
            for start in range(0, total, 100):
                await asyncio.gather(
                    *(post_comment(client, video, "x" * 500) for _ in range(start, start + 100))
                )
            stalled = await open_stream(
                running.host,
                running.port,
                f"/comments/{video}/stream",
                {"Last-Event-ID": "0"},
                receive_buffer=1024,
            )
            for _ in range(100):
                metrics = (await client.get("/metrics")).text
                if "livecomments_viewers_cut_off_total 1.0" in metrics:
                    break
                await asyncio.sleep(0.1)
            assert "livecomments_viewers_cut_off_total 1.0" in metrics
            received = []
            with contextlib.suppress(EOFError, ConnectionError):
                while True:
                    received.append(await stalled.next_event(seconds=5))
            assert seqs(received) == list(range(1, len(received) + 1))
            assert len(received) < total
            last = received[-1].id if received else "0"
            resumed = await stream(running, video, headers={"Last-Event-ID": last})
            rest = await resumed.events(total - len(received))
            assert seqs(received) + seqs(rest) == list(range(1, total + 1))
            for sse in (stalled, resumed):
                sse.close()


async def test_a_viewer_that_pauses_and_catches_up_is_never_cut_off(tmp_path, video):
    """Bursts that back the socket up, each read in full before the next: the unsent
    count must fall back to zero every time, or the viewer is wrongly cut off."""
    with ServerProcess(f"sqlite:///{tmp_path}/c.db") as running:  # 1 MiB per viewer
        async with httpx.AsyncClient(base_url=running.url, timeout=30) as client:
            viewer = await open_stream(
                running.host, running.port, f"/comments/{video}/stream", receive_buffer=4096
            )
            big = "\N{GRINNING FACE}" * 500  # 2 KB of UTF-8 per comment
            received: list[int] = []
            for _ in range(8):  # 460 KB a burst: about half of it waits in user space
                await asyncio.gather(*(post_comment(client, video, big) for _ in range(200)))
                received += seqs(await viewer.events(200))
            assert received == list(range(1, 1601))
            metrics = (await client.get("/metrics")).text
            assert "livecomments_viewers_cut_off_total 0.0" in metrics
            viewer.close()


async def test_an_http_1_0_client_gets_the_stream_without_chunk_framing(server, client, video):
    posted = await post_comment(client, video, "for an old client")
    reader, writer = await asyncio.open_connection(server.host, server.port)
    request = f"GET /comments/{video}/stream?last_id=0 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
    writer.write(request.encode())
    received = b""
    while b"\n\n" not in received.partition(b"id: 1\n")[2]:
        received += await asyncio.wait_for(reader.read(65536), 5)
    writer.close()
    head, _, body = received.partition(b"\r\n\r\n")
    assert b"Transfer-Encoding" not in head
    assert b"\r\nConnection: close" in head  # the body ends only when the connection does
    assert body.startswith(b"retry: ")
    assert b"\r\n" not in body  # SSE lines end in \n; only chunk framing would add \r\n
    assert json.loads(body.split(b"data: ")[1].split(b"\n")[0]) == posted


async def test_streams_handed_over_from_tornado_leave_no_cyclic_garbage(server, client, video):
    """A stream's handler is detached from Tornado, which then never breaks the handler's
    reference cycles as it does for a finished response: each stream left about 33 objects
    (handler, request, HTTP connection, task) for the cyclic collector, so a storm of
    reconnecting viewers set off long full collections, which stall every video."""
    collected = "python_gc_objects_collected_total"
    before = total((await client.get("/metrics")).text, collected)
    streams = [await stream(server, f"{video}-{n}") for n in range(300)]
    for opened in streams:
        opened.close()
    await asyncio.sleep(0.5)
    for n in range(300):  # allocations enough for the collector to run a few times
        await client.get(f"/comments/{video}-{n}", params={"limit": 1})
    after = total((await client.get("/metrics")).text, collected)
    assert after - before < 1000, f"{after - before:.0f} objects went to the cyclic collector"


def test_clients_that_reset_their_stream_at_once_cost_no_traceback(tmp_path, video):
    with ServerProcess(f"sqlite:///{tmp_path}/c.db") as running:
        for _ in range(200):
            sock = socket.create_connection((running.host, running.port))
            sock.sendall(f"GET /comments/{video}/stream HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()  # a reset, not a clean close
        assert httpx.get(running.url + "/healthz").status_code == 200
        metrics = running.url + "/metrics"
        wait_until(lambda: value(httpx.get(metrics).text, "livecomments_streams_open") == 0)
    assert "Traceback" not in running.log()
    assert " ERROR " not in running.log()


async def test_stalled_catching_up_viewers_hold_little_memory(tmp_path, video):
    """300 viewers resuming from the start of 1,500 comments of 2 KB, each with a 4 KiB
    receive buffer and reading nothing. Each pinned 1.3-2 MB when a catch-up read 500
    comments from the store at a time: 590 MB for the 300."""
    with ServerProcess(f"sqlite:///{tmp_path}/c.db") as running:
        async with httpx.AsyncClient(base_url=running.url, timeout=30) as client:
            big = "\N{GRINNING FACE}" * 500
            for _batch in range(15):
                await asyncio.gather(*(post_comment(client, video, big) for _ in range(100)))
            rss_before = running.rss_bytes()
            stalled = [
                await open_stream(
                    running.host, running.port, f"/comments/{video}/stream?last_id=0", None, 4096
                )
                for _ in range(300)
            ]
            await asyncio.sleep(2)  # every catch-up has filled its buffers and waits
            rss_growth = running.rss_bytes() - rss_before
            for sse in stalled:
                sse.close()
    assert rss_growth < 100 * 1024 * 1024, f"{rss_growth / 2**20:.0f} MB"
