"""The `Bus` contract, run against every bus implementation."""

import asyncio
from collections.abc import AsyncIterator

import pytest

from bus import Bus, open_bus


@pytest.fixture(params=["memory://"])
async def bus(request) -> AsyncIterator[Bus]:
    opened = open_bus(request.param)
    await opened.open()
    yield opened
    await opened.close()


async def received_by(queue: asyncio.Queue[bytes], count: int) -> list[bytes]:
    return [await asyncio.wait_for(queue.get(), 5) for _ in range(count)]


async def test_subscriber_receives_what_is_published_for_its_video(bus):
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    other: asyncio.Queue[bytes] = asyncio.Queue()
    await bus.subscribe("v1", queue.put_nowait)
    await bus.subscribe("v2", other.put_nowait)
    await bus.publish("v1", b"one")
    await bus.publish("v1", b"two")
    assert await received_by(queue, 2) == [b"one", b"two"]
    await asyncio.sleep(0.1)
    assert other.empty()


async def test_unsubscribed_handler_receives_nothing_more(bus):
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    subscription = await bus.subscribe("v", queue.put_nowait)
    await bus.publish("v", b"before")
    assert await received_by(queue, 1) == [b"before"]
    await subscription.unsubscribe()
    await bus.publish("v", b"after")
    await asyncio.sleep(0.1)
    assert queue.empty()


async def test_publish_without_subscribers_is_fine_and_ping_answers(bus):
    await bus.publish("nobody", b"x")
    await bus.ping()
