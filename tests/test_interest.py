"""An instance subscribes to a video on the bus only while it has a local viewer or
long-poll, once however many it has, and unsubscribes shortly after the last leaves.
Checked on the real nats-server's own monitoring endpoint."""

import asyncio
import contextlib

import httpx

from tests.nats_server import NatsCluster
from tests.server_process import ServerProcess, wait_until
from tests.sse_client import open_stream


@contextlib.contextmanager
def instance_on_nats(tmp_path, linger: str):
    """One instance on its own nats-server; yields the instance and that node."""
    nats = NatsCluster(tmp_path)
    store = f"sqlite:///{tmp_path}/c.db"
    with nats, ServerProcess(store, "--linger", linger, bus_url=nats.url) as running:
        yield running, nats.nodes[0]


async def test_subscription_follows_local_interest(tmp_path, video):
    subject = f"comments.{video}"
    with instance_on_nats(tmp_path, linger="0.5") as (running, node):
        assert node.subscriptions(subject) == 0
        viewers = [
            await open_stream(running.host, running.port, f"/comments/{video}/stream")
            for _ in range(3)
        ]
        await asyncio.to_thread(wait_until, lambda: node.subscriptions(subject) == 1)
        for viewer in viewers:
            viewer.close()
        await asyncio.to_thread(wait_until, lambda: node.subscriptions(subject) == 0, 5)

        async with httpx.AsyncClient(base_url=running.url, timeout=30) as client:
            polling = asyncio.create_task(
                client.get(f"/comments/{video}/poll", params={"timeout": 2})
            )
            await asyncio.to_thread(wait_until, lambda: node.subscriptions(subject) == 1)
            assert (await polling).status_code == 200
        await asyncio.to_thread(wait_until, lambda: node.subscriptions(subject) == 0, 5)


async def test_a_viewer_returning_within_the_linger_keeps_the_subscription(tmp_path, video):
    subject = f"comments.{video}"
    with instance_on_nats(tmp_path, linger="3") as (running, node):
        first = await open_stream(running.host, running.port, f"/comments/{video}/stream")
        await asyncio.to_thread(wait_until, lambda: node.subscriptions(subject) == 1)
        first.close()
        await asyncio.sleep(0.5)
        second = await open_stream(running.host, running.port, f"/comments/{video}/stream")
        await asyncio.sleep(3.5)  # past the linger of the first
        assert node.subscriptions(subject) == 1
        second.close()
