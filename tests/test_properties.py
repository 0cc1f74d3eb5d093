"""Property: whatever the interleaving of posts, disconnects, resumes and bus faults,
every viewer's sequence of comments equals the store's.

Built in-process on the real core: two `Hub`s (two "instances"), each with its own
`SQLiteStore` on one shared file and its own `Ingest`, meeting through a
`MemoryBus` that drops, duplicates and delays (so reorders) messages as the drawn
plan says, and can announce a reconnect. Viewers implement the `Viewer` protocol
of livecomments/channel.py, parse the SSE frames they are sent, and are attached
and detached as handlers/stream.py does; a resume starts from the last `id:` seen.
"""

import asyncio
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from hypothesis import example, given, settings
from hypothesis import strategies as st

from bus.base import MessageHandler, ReconnectHandler
from bus.memory import MemoryBus
from livecomments.channel import Channel
from livecomments.comment import Draft
from livecomments.hub import Hub, HubTiming
from livecomments.ingest import Ingest
from store.sqlite import SQLiteStore

VIDEO = "prop"
TIMING = HubTiming(linger=0.05, sync_interval=0.05, heartbeat_interval=0.05, hole_delay=0.005)
BUS_ACTIONS = ["deliver", "deliver", "drop", "duplicate", "delay"]


class FaultyBus:
    """A `Bus` over a shared `MemoryBus` whose deliveries follow a drawn list of actions."""

    def __init__(self, inner: MemoryBus, actions: list[str]) -> None:
        self._inner = inner
        self._actions = actions
        self._next = 0
        self._reconnect: list[ReconnectHandler] = []
        self.dropped = 0

    async def open(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def ping(self) -> None:
        pass

    async def publish(self, video_id: str, payload: bytes) -> None:
        await self._inner.publish(video_id, payload)

    async def subscribe(self, video_id: str, handler: MessageHandler):
        return await self._inner.subscribe(
            video_id, lambda payload: self._deliver(handler, payload)
        )

    def _deliver(self, handler: MessageHandler, payload: bytes) -> None:
        action = self._actions[self._next % len(self._actions)] if self._actions else "deliver"
        self._next += 1
        loop = asyncio.get_running_loop()
        if action == "deliver":
            handler(payload)
        elif action == "drop":
            self.dropped += 1
        elif action == "duplicate":
            handler(payload)
            loop.call_soon(handler, payload)
        elif action == "delay":
            loop.call_later(0.01, handler, payload)

    def on_reconnect(self, handler: ReconnectHandler) -> None:
        self._reconnect.append(handler)

    def reconnected(self) -> None:
        for handler in self._reconnect:
            handler()


class Connection:
    """One SSE connection of a viewer: parses frames into the viewer's record."""

    def __init__(self, record: list[tuple[int, str]]) -> None:
        self.record = record
        self.open = True
        self.ended = False
        self._buffer = b""

    def send(self, data: bytes) -> None:
        if not self.open:
            return
        self._buffer += data
        *frames, self._buffer = self._buffer.split(b"\n\n")
        for frame in frames:
            fields = dict(line.split(b": ", 1) for line in frame.split(b"\n") if b": " in line)
            if b"id" in fields:
                message = json.loads(fields[b"data"])["message"]
                self.record.append((int(fields[b"id"]), message))

    def end(self) -> None:
        self.ended = True
        self.open = False

    async def drain(self) -> bool:
        await asyncio.sleep(0)
        return self.open


class WatchingViewer:
    """A viewer that connects, disconnects and resumes from the last id it saw."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.record: list[tuple[int, str]] = []
        self.connection: Connection | None = None
        self.channel: Channel | None = None
        self.attaching: asyncio.Task[None] | None = None

    async def connect(self) -> None:
        if self.connection is not None:
            return
        cursor = self.record[-1][0] if self.record else 0
        connection = Connection(self.record)
        channel = await self.hub.join(VIDEO)
        self.connection, self.channel = connection, channel
        self.attaching = asyncio.ensure_future(
            self.hub.attach(channel, connection, cursor, connection.drain)
        )

    async def disconnect(self) -> None:
        connection, channel, attaching = self.connection, self.channel, self.attaching
        if connection is None or channel is None or attaching is None:
            return
        connection.open = False
        await attaching  # returns at its next drain, as a handler's attach does
        channel.remove_viewer(connection)
        self.hub.leave(channel)
        self.connection = self.channel = self.attaching = None


steps = st.lists(
    st.one_of(
        st.tuples(st.just("post"), st.integers(0, 1), st.integers(1, 6)),
        st.tuples(st.just("disconnect"), st.integers(0, 3), st.just(0)),
        st.tuples(st.just("connect"), st.integers(0, 3), st.just(0)),
        st.tuples(st.just("pause"), st.just(0), st.integers(0, 3)),
        st.tuples(st.just("reconnect_bus"), st.integers(0, 1), st.just(0)),
    ),
    min_size=1,
    max_size=25,
)


async def wait_for(condition: Callable[[], bool], within: float) -> bool:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


async def run_plan(directory: Path, plan: list[tuple[str, int, int]], bus_actions) -> None:
    path = str(directory / "comments.db")
    shared = MemoryBus()
    stores = [SQLiteStore(path), SQLiteStore(path)]
    buses = [FaultyBus(shared, bus_actions[0]), FaultyBus(shared, bus_actions[1])]
    hubs = [Hub(s, b, ring_size=16, timing=TIMING) for s, b in zip(stores, buses, strict=True)]
    ingests = [Ingest(s, h.committed) for s, h in zip(stores, hubs, strict=True)]
    for store in stores:
        await store.open()
    for hub in hubs:
        await hub.start()
    # four viewers, two on each instance; they all start watching from the beginning
    viewers = [WatchingViewer(hubs[i % 2]) for i in range(4)]
    posted = 0
    pending: list[asyncio.Future[object]] = []
    try:
        for viewer in viewers:
            await viewer.connect()
        for action, target, amount in plan:
            if action == "post":
                drafts = [Draft(f"m{posted + i}", "prop") for i in range(amount)]
                posted += amount
                pending += [asyncio.ensure_future(ingests[target].post(VIDEO, d)) for d in drafts]
            elif action == "disconnect":
                await viewers[target].disconnect()
            elif action == "connect":
                await viewers[target].connect()
            elif action == "pause":
                await asyncio.sleep(0.005 * amount)
            elif action == "reconnect_bus":
                buses[target].reconnected()
        await asyncio.gather(*pending)
        for viewer in viewers:
            await viewer.connect()
        expected = [(c.seq, c.message) for c in await stores[0].page_after(VIDEO, 0, 10_000)]
        assert [seq for seq, _ in expected] == list(range(1, posted + 1))
        await wait_for(lambda: all(len(v.record) >= len(expected) for v in viewers), 5.0)
        await asyncio.sleep(0.05)  # room for a late duplicate to show
        for index, viewer in enumerate(viewers):
            assert viewer.record == expected, (index, viewer.record, expected)
    finally:
        for viewer in viewers:
            await viewer.disconnect()
        for ingest in ingests:
            await ingest.close()
        for hub in hubs:
            await hub.close()
        for store in stores:
            await store.close()


@settings(max_examples=30, deadline=None)
@given(
    plan=steps,
    bus_actions=st.tuples(
        st.lists(st.sampled_from(BUS_ACTIONS), min_size=1, max_size=12),
        st.lists(st.sampled_from(BUS_ACTIONS), min_size=1, max_size=12),
    ),
)
@example(  # the bus loses everything: only the store can bring the other instance's posts
    plan=[("post", 0, 5), ("disconnect", 1, 0), ("post", 1, 3), ("connect", 1, 0)],
    bus_actions=(["drop"], ["drop"]),
)
@example(  # duplicates and late arrivals, viewers leaving and resuming mid-flow
    plan=[("post", 0, 4), ("disconnect", 0, 0), ("post", 1, 6), ("connect", 0, 0)] * 2,
    bus_actions=(["duplicate", "delay"], ["delay", "deliver", "duplicate"]),
)
def test_every_viewer_sequence_equals_the_store(plan, bus_actions):
    with tempfile.TemporaryDirectory() as directory:
        asyncio.run(run_plan(Path(directory), plan, bus_actions))
