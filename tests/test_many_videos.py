"""Many watched videos in one process: quiet ones cost the store one query per check, whatever
their number, and keep only their recent comments in memory; a comment whose bus message is
lost still reaches every video's viewers within 5 s."""

import asyncio
import json
import subprocess
import time
from pathlib import Path

import httpx

from bus.memory import MemoryBus
from livecomments.comment import Draft
from livecomments.hub import Hub, HubTiming
from livecomments.ingest import Ingest
from server import LISTEN_BACKLOG
from store.sqlite import SQLiteStore
from tests.server_process import ServerProcess
from tests.sse_client import open_stream

LOST_COMMENT_DEADLINE = 5.0


async def test_every_video_gets_the_comments_its_bus_lost(tmp_path):
    """Two instances share one SQLite file, each with its own in-process bus: nothing the
    writer publishes ever reaches the reader (a bus that loses every message), so only the
    reader's completeness check can bring the comments to its viewers."""
    store = f"sqlite:///{tmp_path}/shared.db"
    videos = [f"quiet-{n}" for n in range(200)]
    with ServerProcess(store) as writer, ServerProcess(store) as reader:
        streams = [
            await open_stream(reader.host, reader.port, f"/comments/{video}/stream")
            for video in videos
        ]
        try:
            async with httpx.AsyncClient(base_url=writer.url, timeout=10) as http:
                posted_at = time.monotonic()
                for video in videos:
                    response = await http.post(f"/comments/{video}", json={"message": video})
                    assert response.status_code == 201, response.text
            events = await asyncio.gather(
                *(stream.next_event(LOST_COMMENT_DEADLINE + 2) for stream in streams)
            )
            waited = time.monotonic() - posted_at
        finally:
            for stream in streams:
                stream.close()
    assert [(event.seq, json.loads(event.data)["message"]) for event in events] == [
        (1, video) for video in videos
    ]
    assert waited < LOST_COMMENT_DEADLINE, f"the last lost comment arrived after {waited:.1f} s"


class CountingStore(SQLiteStore):
    """A real SQLite store that counts the reads the hub makes of it."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.reads: dict[str, int] = {"last_seq": 0, "page_after": 0, "videos_ahead": 0}

    async def last_seq(self, video_id: str) -> int:
        self.reads["last_seq"] += 1
        return await super().last_seq(video_id)

    async def page_after(self, video_id, after, limit, before=None):
        self.reads["page_after"] += 1
        return await super().page_after(video_id, after, limit, before)

    async def videos_ahead(self, known):
        self.reads["videos_ahead"] += 1
        return await super().videos_ahead(known)


async def test_quiet_videos_cost_one_store_query_per_check(tmp_path):
    store = CountingStore(str(tmp_path / "c.db"))
    await store.open()
    bus = MemoryBus()
    interval = 0.1
    hub = Hub(store, bus, timing=HubTiming(sync_interval=interval))
    await hub.start()
    try:
        for n in range(3000):
            await hub.join(f"v{n}")
        opened = dict(store.reads)
        await asyncio.sleep(interval * 10.5)
        made = {name: count - opened[name] for name, count in store.reads.items()}
    finally:
        await hub.close()
        await bus.close()
        await store.close()
    assert made["last_seq"] == made["page_after"] == 0
    assert 5 <= made["videos_ahead"] <= 11  # one a check, for all 3,000 videos


async def test_a_quiet_videos_ring_keeps_only_its_recent_comments(tmp_path):
    store = SQLiteStore(str(tmp_path / "c.db"))
    await store.open()
    bus = MemoryBus()
    hub = Hub(store, bus, timing=HubTiming(sync_interval=0.05, ring_retention=0.2))
    await hub.start()
    ingest = Ingest(store, hub.committed)
    try:
        channel = await hub.join("quiet")
        for n in range(3):
            await ingest.post("quiet", Draft(f"m{n}", "ann"))
        assert [entry.seq for entry in channel.ring] == [1, 2, 3]
        assert channel.ring_bytes == sum(entry.size for entry in channel.ring) > 0
        await asyncio.sleep(0.4)
        assert (list(channel.ring), channel.ring_bytes) == ([], 0)
        # a catch-up from before what the ring holds reads the store
        assert [entry.seq for entry in await hub.read_after(channel, 0, 10)] == [1, 2, 3]
    finally:
        await ingest.close()
        await hub.close()
        await bus.close()
        await store.close()


def test_the_listening_socket_queues_a_reconnect_storm(tmp_path):
    """After a restart every viewer reconnects at once; connections the kernel cannot queue
    are dropped and their clients wait seconds to try again. `ss` shows a listening
    socket's accept queue limit as its Send-Q."""
    with ServerProcess(f"sqlite:///{tmp_path}/c.db") as running:
        listing = subprocess.run(
            ["ss", "-Hltn", f"sport = :{running.port}"], capture_output=True, text=True, check=True
        ).stdout.split()
    somaxconn = int(Path("/proc/sys/net/core/somaxconn").read_text())
    assert int(listing[2]) == min(LISTEN_BACKLOG, somaxconn) > 128
