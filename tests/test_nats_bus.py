"""NATS-specific behaviour on a real nats-server: reconnects and an unreachable server."""

import asyncio

import pytest

from bus import BusUnavailable, open_bus
from tests.nats_server import NatsCluster
from tests.ports import free_port


async def test_reconnect_is_announced_and_subscriptions_survive(tmp_path):
    with NatsCluster(tmp_path) as cluster:
        publisher, subscriber = open_bus(cluster.url), open_bus(cluster.url)
        await publisher.open()
        await subscriber.open()
        try:
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
            for _ in range(100):  # the publisher reconnects on its own schedule
                await publisher.publish("v", b"after restart")
                try:
                    assert await asyncio.wait_for(queue.get(), 0.1) == b"after restart"
                    break
                except TimeoutError:
                    continue
            else:
                pytest.fail("no message arrived after the restart")
        finally:
            await publisher.close()
            await subscriber.close()


async def test_unreachable_server_is_refused_at_open():
    bus = open_bus(f"nats://127.0.0.1:{free_port()}")
    with pytest.raises(BusUnavailable):
        await asyncio.wait_for(bus.open(), 15)
