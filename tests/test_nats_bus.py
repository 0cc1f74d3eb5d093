"""NATS-specific behaviour on a real nats-server: reconnects, a frozen server (SIGSTOP),
an unreachable server, and a viewer who arrives while NATS is down."""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from bus import Bus, BusUnavailable, open_bus
from tests.conftest import post_comment
from tests.nats_server import NatsCluster, NatsNode
from tests.ports import free_port
from tests.server_process import ServerProcess
from tests.sse_client import open_stream


@contextlib.asynccontextmanager
async def publisher_and_subscriber(cluster: NatsCluster) -> AsyncIterator[tuple[Bus, Bus]]:
    publisher, subscriber = open_bus(cluster.url), open_bus(cluster.url)
    await publisher.open()
    await subscriber.open()
    try:
        yield publisher, subscriber
    finally:
        await publisher.close()
        await subscriber.close()


@contextlib.contextmanager
def frozen(node: NatsNode) -> Iterator[None]:
    node.pause()
    try:
        yield
    finally:
        node.resume()


async def arrives(publisher: Bus, queue: asyncio.Queue[bytes], payload: bytes, within=10.0) -> bool:
    """Publish `payload` every 0.1 s until the subscriber's queue gets it, or `within` ends."""
    deadline = asyncio.get_running_loop().time() + within
    while asyncio.get_running_loop().time() < deadline:
        await publisher.publish("v", payload)
        with contextlib.suppress(TimeoutError):
            if await asyncio.wait_for(queue.get(), 0.1) == payload:
                return True
    return False


async def test_reconnect_is_announced_and_subscriptions_survive(tmp_path):
    with NatsCluster(tmp_path) as cluster:
        async with publisher_and_subscriber(cluster) as (publisher, subscriber):
            reconnected = asyncio.Event()
            subscriber.on_reconnect(reconnected.set)
            queue: asyncio.Queue[bytes] = asyncio.Queue()
            await subscriber.subscribe("v", queue.put_nowait)
            node = cluster.nodes[0]
            await asyncio.to_thread(node.stop)
            with pytest.raises(BusUnavailable):
                await subscriber.ping()
            await asyncio.to_thread(node.start)
            await asyncio.wait_for(reconnected.wait(), 10)
            await subscriber.ping()
            # the publisher reconnects on its own schedule
            assert await arrives(publisher, queue, b"after restart"), "nothing after the restart"


async def test_a_ping_that_times_out_leaves_every_subscription_working(tmp_path):
    """A frozen server lets a ping time out; once it answers again, messages flow at once.
    (nats-py's own flush timeout used to end its reader: "connected", deaf for minutes.)"""
    with NatsCluster(tmp_path) as cluster:
        async with publisher_and_subscriber(cluster) as (publisher, subscriber):
            queue: asyncio.Queue[bytes] = asyncio.Queue()
            await subscriber.subscribe("v", queue.put_nowait)
            with frozen(cluster.nodes[0]), pytest.raises(BusUnavailable):
                await subscriber.ping()
            assert await arrives(publisher, queue, b"after the freeze", within=5)
            await subscriber.ping()


async def test_a_subscription_made_while_nats_hangs_is_kept(tmp_path):
    """A frozen server cannot confirm a subscription; it is kept all the same (the bus is
    only the fast path) and carries messages once the server answers again."""
    with NatsCluster(tmp_path) as cluster:
        async with publisher_and_subscriber(cluster) as (publisher, subscriber):
            queue: asyncio.Queue[bytes] = asyncio.Queue()
            with frozen(cluster.nodes[0]):
                await asyncio.wait_for(subscriber.subscribe("v", queue.put_nowait), 15)
            assert await arrives(publisher, queue, b"after the freeze", within=5)
            await subscriber.ping()


async def test_round_trips_at_the_same_time_all_succeed(tmp_path):
    """Readiness pings and channel subscriptions overlap under load; none may refuse another."""
    with NatsCluster(tmp_path) as cluster:
        bus = open_bus(cluster.url)
        await bus.open()
        try:
            await asyncio.gather(
                *(bus.ping() for _ in range(3)),
                *(bus.subscribe(f"v{n}", lambda payload: None) for n in range(3)),
            )
        finally:
            await bus.close()


async def test_unreachable_server_is_refused_at_open():
    bus = open_bus(f"nats://127.0.0.1:{free_port()}")
    with pytest.raises(BusUnavailable):
        await asyncio.wait_for(bus.open(), 15)


async def test_a_viewer_who_arrives_while_nats_is_down_gets_every_comment(tmp_path, video):
    """The bus is only the fast path: a new video's first viewer is served while NATS is
    away, from the store, and by the bus again once it is back."""
    store_url = f"sqlite:///{tmp_path}/shared.db"  # two processes may share one SQLite file
    with (
        NatsCluster(tmp_path) as nats,
        ServerProcess(store_url, bus_url=nats.url) as watched,
        ServerProcess(store_url, bus_url=nats.url) as posted_to,
    ):
        node = nats.nodes[0]
        await asyncio.to_thread(node.stop)
        viewer = await open_stream(watched.host, watched.port, f"/comments/{video}/stream")
        assert viewer.status == 200
        async with httpx.AsyncClient(base_url=posted_to.url, timeout=30) as client:
            await post_comment(client, video, "while NATS is down")
            assert [e.id for e in await viewer.events(1, seconds=10)] == ["1"]
            await asyncio.to_thread(node.start)
            for n in range(2, 12):
                await post_comment(client, video, f"m{n}")
                await asyncio.sleep(0.1)
        assert [e.id for e in await viewer.events(10, seconds=10)] == [str(n) for n in range(2, 12)]
        viewer.close()
