"""Readiness follows the real store and bus: not ready while either is down, ready
again by itself when it is back, and posts never get a false 201 meanwhile."""

import asyncio

import httpx

from tests.mongo_server import FerretDB
from tests.nats_server import NatsCluster
from tests.server_process import ServerProcess


async def ready_state(client: httpx.AsyncClient) -> tuple[int, dict]:
    response = await client.get("/readyz")
    return response.status_code, response.json()["checks"]


async def eventually(client: httpx.AsyncClient, status: int, seconds: float = 15) -> dict:
    for _ in range(int(seconds * 10)):
        code, checks = await ready_state(client)
        if code == status:
            return checks
        await asyncio.sleep(0.1)
    raise AssertionError(f"/readyz never answered {status}")


async def test_readiness_tracks_the_bus_and_the_store(tmp_path, video):
    store = FerretDB(tmp_path / "ferretdb")
    nats = NatsCluster(tmp_path)
    with store, nats, ServerProcess(store.url("ready"), bus_url=nats.url) as running:
        async with httpx.AsyncClient(base_url=running.url, timeout=30) as client:
            assert await eventually(client, 200) == {"store": "ok", "bus": "ok"}

            await asyncio.to_thread(nats.nodes[0].stop)
            checks = await eventually(client, 503)
            assert checks["store"] == "ok"
            assert checks["bus"].startswith("unavailable")
            posted = await client.post(f"/comments/{video}", json={"message": "bus down"})
            assert posted.status_code == 201  # committed; the bus is only the fast path
            await asyncio.to_thread(nats.nodes[0].start)
            await eventually(client, 200)

            await asyncio.to_thread(store.stop)
            checks = await eventually(client, 503)
            assert checks["store"].startswith("unavailable")
            refused = await client.post(f"/comments/{video}", json={"message": "store down"})
            assert refused.status_code == 503
            assert refused.json()["error"]["code"] == "store_unavailable"
            await asyncio.to_thread(store.start)
            await eventually(client, 200)
            after = await client.post(f"/comments/{video}", json={"message": "back"})
            assert after.status_code == 201
            assert after.json()["seq"] == 2
