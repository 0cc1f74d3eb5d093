"""One client must not take the service down: open streams and long-polls per address are
capped by default, and a process near its file limit answers new connections instead of
failing in `accept()`. The servers here run under a lowered `ulimit -n` (`file_limit`)."""

import contextlib
import resource
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.http_checks import allow_open_files, cpu_seconds, read_until_closed
from tests.server_process import ServerProcess, wait_until

FULL = b"too many connections"


@pytest.fixture(autouse=True, scope="module")
def enough_files_for_the_clients():
    before = allow_open_files(4096)
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, before)


def request(server, path: str, source: str = "127.0.0.1") -> socket.socket:
    """A connection from `source` that has sent `GET path` and reads nothing yet."""
    sock = socket.create_connection((server.host, server.port), 5, source_address=(source, 0))
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    return sock


def response_start(sock: socket.socket) -> bytes:
    """The first bytes of the answer: the head and, for a stream, its opening."""
    sock.settimeout(5)
    received = b""
    while b"\n\n" not in received.partition(b"\r\n\r\n")[2]:
        chunk = sock.recv(4096)
        if not chunk:
            break
        received += chunk
    return received


@contextlib.contextmanager
def closing_all(socks: list[socket.socket]) -> Iterator[list[socket.socket]]:
    try:
        yield socks
    finally:
        for sock in socks:
            sock.close()


def test_streams_and_long_polls_of_one_address_share_a_default_cap(tmp_path, video):
    with ServerProcess(f"sqlite:///{tmp_path}/c.db", client_limits=()) as running:
        streams = [request(running, f"/comments/{video}/stream") for _ in range(30)]
        polls = [request(running, f"/comments/{video}/poll?timeout=30") for _ in range(20)]
        with closing_all(streams + polls):
            assert all(b" 200 " in response_start(sock) for sock in streams)
            past_the_cap = [
                httpx.get(f"{running.url}/comments/{video}/{kind}", params={"timeout": 0})
                for kind in ("stream", "poll")
            ]
            with httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.9")) as other:
                another_address = other.get(f"{running.url}/comments/{video}/poll?timeout=0")
        assert [r.status_code for r in past_the_cap] == [429, 429]
        assert {r.json()["error"]["code"] for r in past_the_cap} == {"too_many_streams"}
        assert another_address.status_code == 200
        wait_until(  # the places are given back
            lambda: httpx.get(f"{running.url}/comments/{video}/poll?timeout=0").status_code == 200
        )


def test_one_address_cannot_fill_the_process_with_idle_connections(tmp_path):
    with ServerProcess(f"sqlite:///{tmp_path}/c.db", client_limits=()) as running:
        address = (running.host, running.port)
        idle = [socket.create_connection(address, 5, ("127.0.0.7", 0)) for _ in range(60)]
        with closing_all(idle):
            for sock in idle[50:]:
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            answers = [read_until_closed(sock)[0] for sock in idle[50:]]
            with httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.8")) as other:
                assert other.get(running.url + "/healthz").status_code == 200
        assert all(b" 429 " in answer for answer in answers)
        assert all(b'"too_many_connections"' in answer for answer in answers)
        wait_until(lambda: httpx.get(running.url + "/healthz").status_code == 200)


def test_a_flood_from_one_address_leaves_room_for_others(tmp_path):
    # 300 files: a budget of 172 connections, which the flood's 400 must not fill, either
    # with connections or with the refusals being answered.
    args = (f"sqlite:///{tmp_path}/c.db",)
    with ServerProcess(*args, client_limits=(), file_limit=300) as running:
        address = (running.host, running.port)
        flood = [socket.create_connection(address, 5, ("127.0.0.7", 0)) for _ in range(400)]
        with closing_all(flood):
            for sock in flood:
                with contextlib.suppress(OSError):  # some are answered and closed at once
                    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            with httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.8")) as other:
                assert other.get(running.url + "/healthz").status_code == 200


def test_past_the_connection_budget_clients_are_told_to_come_back(tmp_path, video):
    # 300 files: 172 connections are served, 64 more are answered and closed.
    with ServerProcess(f"sqlite:///{tmp_path}/c.db", file_limit=300) as running:
        streams = [
            request(running, f"/comments/{video}/stream", f"127.0.1.{n + 1}") for n in range(200)
        ]
        with closing_all(streams):
            starts = [response_start(sock) for sock in streams]
            refused = [start for start in starts if FULL in start]
            assert 20 <= len(refused) <= 40  # the first 172 or so were served
            assert all(b"200 OK" in start and b"retry: 5000" in start for start in refused)
            health = httpx.get(running.url + "/healthz")
            assert health.status_code == 503
            assert health.json()["error"]["code"] == "overloaded"
            assert health.headers["Retry-After"] == "5"
        wait_until(lambda: httpx.get(running.url + "/healthz").status_code == 200)
    assert "Traceback" not in running.log()


def test_when_accept_fails_the_server_pauses_instead_of_spinning(tmp_path, video):
    # A budget above the file limit, as a wrong --max-connections would set: accept() runs
    # out of files, and must neither spin nor log a traceback per attempt.
    args = ("--max-connections", "1000")
    with ServerProcess(f"sqlite:///{tmp_path}/c.db", *args, file_limit=200) as running:
        socks = [request(running, f"/comments/{video}/stream") for _ in range(260)]
        with closing_all(socks):
            wait_until(lambda: "cannot accept connections" in running.log())
            before = cpu_seconds(running.pid)
            time.sleep(2)
            spent = cpu_seconds(running.pid) - before
        assert spent < 0.5  # Tornado's own loop spun at 90-100% of a core here
        wait_until(lambda: httpx.get(running.url + "/healthz").status_code == 200, timeout=10)
    log = running.log()
    assert log.count("cannot accept connections") <= 2
    assert "Traceback" not in log
