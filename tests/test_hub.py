"""Hub.attach on the real core (SQLite store, in-process bus): a viewer goes live exactly
at the channel's flushed position, also while a coalescing window holds comments back."""

import asyncio

from bus.memory import MemoryBus
from livecomments.comment import Draft
from livecomments.hub import Hub, HubTiming
from livecomments.ingest import Ingest
from store.sqlite import SQLiteStore
from tests.test_channel import RecordingViewer


async def still_open() -> bool:
    return True


async def test_viewers_joining_inside_a_coalescing_window_get_each_comment_once(tmp_path):
    store = SQLiteStore(str(tmp_path / "c.db"))
    await store.open()
    bus = MemoryBus()
    hub = Hub(store, bus, timing=HubTiming(coalesce=0.2))
    await hub.start()
    ingest = Ingest(store, hub.committed)
    try:
        channel = await hub.join("v")
        await ingest.post("v", Draft("first", "ann"))
        await asyncio.sleep(0.01)
        assert channel.flushed_seq == 1
        for n in (2, 3):
            await ingest.post("v", Draft(f"m{n}", "ann"))
        assert (channel.last_seq, channel.flushed_seq) == (3, 1)  # 2 and 3 wait for the window

        behind, ahead, fresh = RecordingViewer(), RecordingViewer(), RecordingViewer()
        await hub.attach(channel, behind, 1, still_open)
        joining = asyncio.create_task(hub.attach(channel, ahead, 3, still_open))
        await hub.attach(channel, fresh, None, still_open)
        await asyncio.wait_for(joining, 2)  # it waited for the flush of 2 and 3
        await ingest.post("v", Draft("m4", "ann"))
        await asyncio.sleep(0.3)
        assert behind.seqs() == [2, 3, 4]
        assert ahead.seqs() == [4]
        assert fresh.seqs() == [2, 3, 4]  # live from the flushed position
    finally:
        await ingest.close()
        await hub.close()
        await bus.close()
        await store.close()
