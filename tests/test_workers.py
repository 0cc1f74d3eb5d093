"""`--workers N`: N processes share one port, meet through NATS, and stop together."""

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.metrics import value
from tests.nats_server import NatsCluster
from tests.server_process import ROOT, ServerProcess, wait_until
from tests.sse_client import open_stream


def worker_pids(parent: int) -> list[int]:
    children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
    return [int(pid) for pid in children]


def connections_served(pid: int, port: int) -> int:
    """Established TCP connections on `port` that process `pid` holds open."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    count = 0
    for row in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = row.split()
        local_port = int(fields[1].split(":")[1], 16)
        if local_port == port and fields[3] == "01" and fields[9] in inodes:
            count += 1
    return count


def test_memory_bus_refuses_several_workers():
    finished = subprocess.run(
        [sys.executable, "server.py", "--port", "0", "--workers", "2"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert finished.returncode == 2
    assert "memory://" in finished.stderr
    assert "nats://" in finished.stderr


@pytest.fixture(scope="module")
def nats_url(tmp_path_factory):
    with NatsCluster(tmp_path_factory.mktemp("nats")) as nats:
        yield nats.url


async def test_workers_share_the_port_and_every_viewer_gets_everything(nats_url, tmp_path):
    store = f"sqlite:///{tmp_path}/c.db"
    with ServerProcess(store, "--workers", "2", bus_url=nats_url) as running:
        await asyncio.to_thread(wait_until, lambda: len(worker_pids(running.pid)) == 2)
        viewers = [
            await open_stream(running.host, running.port, "/comments/w/stream") for _ in range(12)
        ]
        async with httpx.AsyncClient(base_url=running.url, timeout=30) as client:
            await asyncio.sleep(0.5)  # let every worker finish starting
            readers = [asyncio.create_task(viewer.events(60)) for viewer in viewers]
            for first in range(0, 60, 10):
                posts = [
                    client.post("/comments/w", json={"message": f"m{n}"})
                    for n in range(first, first + 10)
                ]
                assert {r.status_code for r in await asyncio.gather(*posts)} == {201}
            for reader in readers:
                assert [e.seq for e in await reader] == list(range(1, 61))
            served = [connections_served(pid, running.port) for pid in worker_pids(running.pid)]
            assert all(count > 0 for count in served), f"one worker served nothing: {served}"
            text = (await client.get("/metrics")).text
            assert value(text, "livecomments_streams_open") == 12  # summed over both workers
            assert value(text, "livecomments_comments_posted_total") == 60
        for viewer in viewers:
            viewer.close()
        assert await asyncio.to_thread(running.terminate) == 0


async def test_a_newest_page_from_a_ring_never_misses_a_comment_the_store_has(tmp_path):
    """Two instances on one store, each on its own NATS: the reader's ring never hears of
    the writer's comments (a bus that loses them), and only its 2 s completeness check
    brings them. Its newest page must come from the store meanwhile, so a client that
    posted through one process reads its comment back through any other."""
    store = f"sqlite:///{tmp_path}/c.db"
    for name in ("nats-w", "nats-r"):
        (tmp_path / name).mkdir()
    with (
        NatsCluster(tmp_path / "nats-w") as writer_bus,
        NatsCluster(tmp_path / "nats-r") as reader_bus,
        ServerProcess(store, bus_url=writer_bus.url) as writer,
        ServerProcess(store, bus_url=reader_bus.url) as reader,
    ):
        viewer = await open_stream(reader.host, reader.port, "/comments/own/stream")
        try:
            async with (
                httpx.AsyncClient(base_url=writer.url) as poster,
                httpx.AsyncClient(base_url=reader.url) as other,
            ):
                for n in range(3):
                    posted = await poster.post("/comments/own", json={"message": f"m{n}"})
                    newest = (await other.get("/comments/own", params={"limit": 1})).json()
                    assert newest["comments"] == [posted.json()]
                    await viewer.events(1)  # the check brought it: now the ring has it
                pages = (await other.get("/metrics")).text
        finally:
            viewer.close()
    assert value(pages, "livecomments_history_pages_total", source="ring") == 0
    assert value(pages, "livecomments_history_pages_total", source="store") == 3


async def test_a_worker_that_dies_is_restarted(nats_url, tmp_path):
    store = f"sqlite:///{tmp_path}/c.db"
    with ServerProcess(store, "--workers", "2", bus_url=nats_url) as running:
        await asyncio.to_thread(wait_until, lambda: len(worker_pids(running.pid)) == 2)
        await asyncio.sleep(5.5)  # workers that die at once are not restarted
        victim = worker_pids(running.pid)[0]
        os.kill(victim, signal.SIGKILL)
        await asyncio.to_thread(
            wait_until,
            lambda: len(worker_pids(running.pid)) == 2 and victim not in worker_pids(running.pid),
            10,
        )
        async with httpx.AsyncClient(base_url=running.url) as client:
            for _ in range(10):
                assert (await client.get("/healthz")).status_code == 200
