"""Several instances on MongoDB (FerretDB) and a NATS cluster, with nginx in front: every
viewer, wherever it is connected, gets every comment exactly once and in order,
also when the bus loses messages because a NATS server restarts mid-flow."""

import asyncio
import contextlib
import itertools

import httpx
import pytest

from tests.metrics import scrape
from tests.nats_server import NatsCluster
from tests.nginx_server import Nginx
from tests.server_process import ServerProcess
from tests.sse_client import open_stream

INSTANCES = 3


@contextlib.contextmanager
def instances(store_url: str, bus_urls: list[str]):
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(ServerProcess(store_url, bus_url=url)) for url in bus_urls]


async def post_round_robin(servers, video: str, count: int, start: int = 0) -> list[int]:
    """Post `count` comments spread over all instances, ten at a time; return their seqs."""
    clients = [httpx.AsyncClient(base_url=s.url, timeout=30) for s in servers]
    try:
        targets = itertools.cycle(clients)
        seqs = []
        for first in range(start, start + count, 10):
            batch = [
                next(targets).post(f"/comments/{video}", json={"message": f"m{n}"})
                for n in range(first, min(first + 10, start + count))
            ]
            for response in await asyncio.gather(*batch):
                assert response.status_code == 201, response.text
                seqs.append(response.json()["seq"])
        return seqs
    finally:
        for client in clients:
            await client.aclose()


async def open_viewers(servers, video: str, per_instance: int):
    return [
        await open_stream(server.host, server.port, f"/comments/{video}/stream")
        for server in servers
        for _ in range(per_instance)
    ]


async def received_seqs(viewer, count: int) -> list[int]:
    return [int(event.id) for event in await viewer.events(count, seconds=15)]


@pytest.fixture(scope="module")
def nats_cluster(tmp_path_factory):
    with NatsCluster(tmp_path_factory.mktemp("nats"), size=3) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def cluster_instances(nats_cluster, mongo_server):
    store_url = mongo_server.url("scale_out")
    urls = [nats_cluster.node_url(i) for i in range(INSTANCES)]  # each on its own NATS node
    with instances(store_url, urls) as servers:
        yield servers


async def test_every_viewer_on_every_instance_gets_every_comment_once_in_order(
    cluster_instances, video
):
    viewers = await open_viewers(cluster_instances, video, per_instance=3)
    readers = [asyncio.create_task(received_seqs(viewer, 120)) for viewer in viewers]
    acknowledged = await post_round_robin(cluster_instances, video, 120)
    assert sorted(acknowledged) == list(range(1, 121))
    for reader in readers:
        assert await reader == list(range(1, 121))
    for viewer in viewers:
        viewer.close()


@pytest.fixture(scope="module")
def nginx(cluster_instances, tmp_path_factory):
    with Nginx(tmp_path_factory.mktemp("nginx"), [s.port for s in cluster_instances]) as proxy:
        yield proxy


async def test_viewers_through_nginx_and_direct_get_every_comment_once(
    cluster_instances, nginx, video
):
    proxied = [
        await open_stream("127.0.0.1", nginx.port, f"/comments/{video}/stream") for _ in range(3)
    ]
    direct = await open_viewers(cluster_instances, video, per_instance=1)
    readers = [asyncio.create_task(received_seqs(viewer, 60)) for viewer in proxied + direct]
    async with httpx.AsyncClient(base_url=nginx.url, timeout=30) as through_nginx:
        for first in range(0, 30, 10):
            posts = [
                through_nginx.post(f"/comments/{video}", json={"message": f"n{first + i}"})
                for i in range(10)
            ]
            assert {r.status_code for r in await asyncio.gather(*posts)} == {201}
    await post_round_robin(cluster_instances, video, 30, start=30)
    for reader in readers:
        assert await reader == list(range(1, 61))
    for viewer in proxied + direct:
        viewer.close()


async def test_nginx_sends_every_request_of_a_video_to_one_instance(
    cluster_instances, nginx, video
):
    before = [await posted_count(server) for server in cluster_instances]
    async with httpx.AsyncClient(base_url=nginx.url, timeout=30) as through_nginx:
        for i in range(10):
            response = await through_nginx.post(f"/comments/{video}", json={"message": f"m{i}"})
            assert response.status_code == 201
    after = [await posted_count(server) for server in cluster_instances]
    assert sorted(b - a for a, b in zip(before, after, strict=True)) == [0, 0, 10]


async def posted_count(server) -> float:
    return await scrape(server.url, "livecomments_comments_posted_total")


async def test_history_is_identical_on_every_instance(cluster_instances, video):
    await post_round_robin(cluster_instances, video, 30)
    pages = []
    for server in cluster_instances:
        async with httpx.AsyncClient(base_url=server.url) as client:
            pages.append((await client.get(f"/comments/{video}", params={"limit": 200})).json())
    assert pages[0]["comments"]
    assert all(page == pages[0] for page in pages)


async def test_viewer_moved_to_another_instance_resumes_without_gap(cluster_instances, video):
    first, second = cluster_instances[0], cluster_instances[1]
    viewer = await open_stream(first.host, first.port, f"/comments/{video}/stream")
    reading = asyncio.create_task(received_seqs(viewer, 20))
    await post_round_robin(cluster_instances, video, 20)
    seen = await reading
    viewer.close()
    await post_round_robin(cluster_instances, video, 15, start=20)
    moved = await open_stream(
        second.host, second.port, f"/comments/{video}/stream", {"Last-Event-ID": str(seen[-1])}
    )
    rest = asyncio.create_task(received_seqs(moved, 20))
    await post_round_robin(cluster_instances, video, 5, start=35)
    assert seen + await rest == list(range(1, 41))
    moved.close()


async def test_long_poll_on_one_instance_sees_posts_to_another(cluster_instances, video):
    async with (
        httpx.AsyncClient(base_url=cluster_instances[0].url, timeout=30) as poller,
        httpx.AsyncClient(base_url=cluster_instances[2].url) as writer,
    ):
        waiting = asyncio.create_task(poller.get(f"/comments/{video}/poll", params={"after": 0}))
        await asyncio.sleep(0.3)
        posted = (await writer.post(f"/comments/{video}", json={"message": "across"})).json()
        assert (await asyncio.wait_for(waiting, 10)).json() == {"comments": [posted], "cursor": 1}


async def test_restarting_nats_loses_no_comment_at_any_viewer(tmp_path, mongo_server, video):
    """All instances share one NATS server, which is killed and restarted while posts flow:
    messages published meanwhile are lost by the bus and must come from the store."""
    nats = NatsCluster(tmp_path)
    store_url = mongo_server.url("nats_restart")
    with nats, instances(store_url, [nats.url] * INSTANCES) as servers:
        viewers = await open_viewers(servers, video, per_instance=2)
        total = 200
        readers = [asyncio.create_task(received_seqs(viewer, total)) for viewer in viewers]
        posting = asyncio.create_task(post_round_robin(servers, video, total))
        await asyncio.sleep(0.3)
        node = nats.nodes[0]
        await asyncio.to_thread(node.kill)
        await asyncio.sleep(1.0)
        await asyncio.to_thread(node.start)
        assert sorted(await posting) == list(range(1, total + 1))
        for reader in readers:
            assert await reader == list(range(1, total + 1))
        for viewer in viewers:
            viewer.close()
        filled = [await scrape(s.url, "livecomments_filled_from_store_total") for s in servers]
        assert sum(filled) > 0, "the bus lost nothing, so this run did not test recovery"


async def test_a_retry_on_another_instance_returns_the_first_comment(cluster_instances, video):
    headers = {"Idempotency-Key": "retry-elsewhere"}
    body = {"message": "only once"}
    async with (
        httpx.AsyncClient(base_url=cluster_instances[0].url) as first,
        httpx.AsyncClient(base_url=cluster_instances[1].url) as second,
    ):
        original = await first.post(f"/comments/{video}", json=body, headers=headers)
        retried = await second.post(f"/comments/{video}", json=body, headers=headers)
        assert original.status_code == retried.status_code == 201
        assert retried.json() == original.json()
        assert retried.headers["Idempotent-Replayed"] == "true"
        history = (await second.get(f"/comments/{video}")).json()["comments"]
        assert [c["message"] for c in history] == ["only once"]
