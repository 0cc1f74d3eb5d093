"""The `Bus` contract, run against every bus implementation (NATS on a real nats-server).

A `bus_pair` is a publishing and a subscribing side: two connections for NATS,
as two instances would have; one and the same object for the in-process bus,
which only ever serves one process.
"""

import asyncio
from collections.abc import AsyncIterator

import pytest

from bus import Bus, open_bus
from tests.nats_server import NatsCluster

BusPair = tuple[Bus, Bus]


@pytest.fixture(scope="module")
def nats_url(tmp_path_factory):
    with NatsCluster(tmp_path_factory.mktemp("nats")) as cluster:
        yield cluster.url


@pytest.fixture(params=["memory", "nats"])
async def bus_pair(request, nats_url) -> AsyncIterator[BusPair]:
    if request.param == "memory":
        memory = open_bus("memory://")
        await memory.open()
        yield memory, memory
        await memory.close()
        return
    publisher, subscriber = open_bus(nats_url), open_bus(nats_url)
    await publisher.open()
    await subscriber.open()
    yield publisher, subscriber
    await publisher.close()
    await subscriber.close()


async def received_by(queue: asyncio.Queue[bytes], count: int) -> list[bytes]:
    return [await asyncio.wait_for(queue.get(), 5) for _ in range(count)]


async def test_subscriber_receives_what_is_published_for_its_video(bus_pair):
    publisher, subscriber = bus_pair
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    other: asyncio.Queue[bytes] = asyncio.Queue()
    await subscriber.subscribe("v1", queue.put_nowait)
    await subscriber.subscribe("v2", other.put_nowait)  # in force on return
    await publisher.publish("v1", b"one")
    await publisher.publish("v1", b"two")
    assert await received_by(queue, 2) == [b"one", b"two"]
    await asyncio.sleep(0.1)
    assert other.empty()


async def test_unsubscribed_handler_receives_nothing_more(bus_pair):
    publisher, subscriber = bus_pair
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    subscription = await subscriber.subscribe("v", queue.put_nowait)
    await publisher.publish("v", b"before")
    assert await received_by(queue, 1) == [b"before"]
    await subscription.unsubscribe()
    await publisher.publish("v", b"after")
    await asyncio.sleep(0.2)
    assert queue.empty()


async def test_odd_video_ids_get_their_own_subjects(bus_pair):
    publisher, subscriber = bus_pair
    dotted: asyncio.Queue[bytes] = asyncio.Queue()
    plain: asyncio.Queue[bytes] = asyncio.Queue()
    await subscriber.subscribe("a.b", dotted.put_nowait)
    await subscriber.subscribe("a", plain.put_nowait)
    await subscriber.subscribe("*", plain.put_nowait)
    await publisher.publish("a.b", b"x")
    assert await received_by(dotted, 1) == [b"x"]
    await asyncio.sleep(0.2)
    assert plain.empty()


async def test_publish_without_subscribers_is_fine_and_ping_answers(bus_pair):
    publisher, _ = bus_pair
    await publisher.publish("nobody", b"x")
    await publisher.ping()
