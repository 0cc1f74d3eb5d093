"""Per-client limits against a real server: post rate (429 + Retry-After), open streams per
address, request head size, and clients that send a request too slowly (slowloris)."""

import asyncio
import socket

import httpx
import pytest

from livecomments.config import parse_config
from livecomments.limits import ConnectionCounter, RateLimiter
from livecomments.proxies import TrustedProxies
from tests.http_checks import read_until_closed
from tests.server_process import ServerProcess, wait_until
from tests.sse_client import open_stream


def test_bucket_refills_at_the_rate_and_caps_at_the_burst():
    limiter = RateLimiter(rate=2.0, burst=2)
    assert [limiter.wait_needed("a", now=0.0) for _ in range(3)] == [0.0, 0.0, 0.5]
    assert limiter.wait_needed("a", now=0.5) == 0.0
    assert limiter.wait_needed("b", now=0.5) == 0.0  # another client has its own bucket
    assert [limiter.wait_needed("c", now=100.0) for _ in range(3)] == [0.0, 0.0, 0.5]


def test_tracked_clients_are_bounded():
    limiter = RateLimiter(rate=1.0, burst=1, max_clients=10)
    for n in range(1000):
        limiter.wait_needed(f"client-{n}", now=0.0)
    assert len(limiter._buckets) == 10


def test_stream_counter_frees_a_place_on_close():
    streams = ConnectionCounter(limit=1)
    assert streams.try_open("a")
    assert not streams.try_open("a")
    assert streams.try_open("b")
    streams.close("a")
    assert streams.try_open("a")


def test_an_ipv6_client_is_its_64_block():
    """One home or phone gets a /64: a client taking another of its addresses is still one."""
    limiter = RateLimiter(rate=1.0, burst=1)
    waits = [limiter.wait_needed(a, now=0.0) for a in ("2001:db8:0:1::1", "2001:db8:0:1::2")]
    assert waits == [0.0, 1.0]
    assert limiter.wait_needed("2001:db8:0:2::1", now=0.0) == 0.0
    connections = ConnectionCounter(limit=1)
    assert connections.try_open("2001:db8:0:1::1")
    assert not connections.try_open("2001:db8:0:1:ffff::9")
    connections.close("2001:db8:0:1::1")
    assert connections.try_open("2001:db8:0:1:ffff::9")


@pytest.fixture(scope="module")
def limited(tmp_path_factory):
    args = ["--post-rate", "1", "--post-burst", "3", "--max-streams-per-ip", "2"]
    args += ["--request-timeout", "1", "--max-header", "4096"]
    store = f"sqlite:///{tmp_path_factory.mktemp('store')}/c.db"
    with ServerProcess(store, *args) as running:
        yield running


def client_from(server, address: str) -> httpx.AsyncClient:
    transport = httpx.AsyncHTTPTransport(local_address=address)
    return httpx.AsyncClient(base_url=server.url, transport=transport, timeout=10)


async def test_posting_too_fast_gets_429_with_retry_after(limited, video):
    async with (
        client_from(limited, "127.0.0.2") as client,
        client_from(limited, "127.0.0.3") as other,
    ):
        statuses = [
            (await client.post(f"/comments/{video}", json={"message": f"m{i}"})).status_code
            for i in range(3)
        ]
        assert statuses == [201, 201, 201]
        refused = await client.post(f"/comments/{video}", json={"message": "too fast"})
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "rate_limited"
        assert int(refused.headers["Retry-After"]) >= 1
        assert (
            await other.post(f"/comments/{video}", json={"message": "other"})
        ).status_code == 201
        await asyncio.sleep(1.1)
        assert (
            await client.post(f"/comments/{video}", json={"message": "later"})
        ).status_code == 201
        history = (await client.get(f"/comments/{video}", params={"after": 0})).json()["comments"]
        assert [c["message"] for c in history] == ["m0", "m1", "m2", "other", "later"]


async def test_forwarded_for_is_ignored_unless_the_proxy_is_trusted(limited, video):
    async with client_from(limited, "127.0.0.4") as client:
        statuses = [
            (
                await client.post(
                    f"/comments/{video}",
                    json={"message": f"m{i}"},
                    headers={"X-Forwarded-For": f"10.0.0.{i}", "X-Real-IP": f"10.0.0.{i}"},
                )
            ).status_code
            for i in range(4)
        ]
    assert statuses == [201, 201, 201, 429]


def forged_posts(server, video: str, headers_for) -> list[int]:
    """The statuses of three posts from this host, each claiming another client."""
    with httpx.Client(base_url=server.url) as client:
        return [
            client.post(
                f"/comments/{video}", json={"message": "hi"}, headers=headers_for(i)
            ).status_code
            for i in range(3)
        ]


@pytest.mark.parametrize("proxies", ["127.0.0.1", "10.0.0.0/8,127.0.0.0/8", "true"])
def test_a_trusted_proxy_names_each_client(tmp_path, video, proxies):
    args = ("--post-rate", "1", "--post-burst", "1", "--trust-proxy", proxies)
    with ServerProcess(f"sqlite:///{tmp_path}/c.db", *args) as running:
        by_forwarded_for = forged_posts(
            running, video, lambda i: {"X-Forwarded-For": f"10.1.{i}.1"}
        )
        by_real_ip = forged_posts(running, video, lambda i: {"X-Real-IP": f"10.2.{i}.1"})
        repeated = forged_posts(running, video, lambda i: {"X-Forwarded-For": "10.3.0.1"})
        wait_until(lambda: "10.3.0.1" in running.log())
    assert by_forwarded_for == [201, 201, 201]
    assert by_real_ip == [201, 201, 201]
    assert repeated == [201, 429, 429]


def test_forwarded_headers_from_an_untrusted_peer_change_nothing(tmp_path, video):
    args = ("--post-rate", "1", "--post-burst", "1", "--trust-proxy", "10.0.0.0/8")
    with ServerProcess(f"sqlite:///{tmp_path}/c.db", *args) as running:
        statuses = forged_posts(
            running, video, lambda i: {"X-Forwarded-For": f"10.0.0.{i}", "X-Real-IP": f"10.0.0.{i}"}
        )
        wait_until(lambda: "429" in running.log())
        assert "10.0.0." not in running.log()  # nor in the access log
        assert running.log().count("is not in --trust-proxy") == 1  # said once
    assert statuses == [201, 429, 429]


def test_a_bad_trusted_proxy_is_refused_at_start(capsys):
    with pytest.raises(SystemExit):
        parse_config(["--trust-proxy", "127.0.0.1,nginx.local"], {})
    assert "nginx.local" in capsys.readouterr().err


def test_forwarded_for_is_read_from_the_right_past_trusted_proxies():
    proxies = TrustedProxies.parse("127.0.0.1, 10.0.0.0/8")
    # The left part is whatever the client itself sent; the right part, what proxies saw.
    assert proxies.client("127.0.0.1", "198.51.100.1, 203.0.113.5, 10.0.0.2", None) == (
        "203.0.113.5"
    )
    assert proxies.client("127.0.0.1", "10.0.0.3, 10.0.0.2", None) == "10.0.0.3"
    assert proxies.client("127.0.0.1", "203.0.113.5, junk", None) == "127.0.0.1"
    assert proxies.client("127.0.0.1", None, "not an address") == "127.0.0.1"
    assert proxies.client("::1", "203.0.113.5", None) == "::1"
    assert TrustedProxies.parse("false").client("127.0.0.1", "203.0.113.5", None) == "127.0.0.1"


async def test_open_streams_per_address_are_capped(limited, video):
    path = f"/comments/{video}/stream"
    first = await open_stream(limited.host, limited.port, path)
    second = await open_stream(limited.host, limited.port, path)
    third = await open_stream(limited.host, limited.port, path)
    assert (first.status, second.status, third.status) == (200, 200, 429)
    assert third.headers["content-type"].startswith("application/json")
    first.close()
    third.close()
    for _ in range(50):
        fourth = await open_stream(limited.host, limited.port, path)
        fourth.close()
        if fourth.status == 200:
            break
        await asyncio.sleep(0.05)
    assert fourth.status == 200
    second.close()


def test_an_oversize_request_head_is_refused_and_the_server_lives_on(limited):
    with socket.create_connection((limited.host, limited.port)) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 8000 + b"\r\n\r\n")
        received, _ = read_until_closed(sock, 5)
    assert b"200 OK" not in received
    assert httpx.get(limited.url + "/healthz").status_code == 200


@pytest.mark.parametrize(
    "partial",
    [
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n",  # the head never ends
        b"POST /comments/v HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 100\r\n\r\n{",  # nor the body
    ],
)
def test_a_client_that_sends_too_slowly_is_disconnected(limited, partial):
    with socket.create_connection((limited.host, limited.port)) as sock:
        sock.sendall(partial)
        received, waited = read_until_closed(sock, 10)
    assert waited < 5  # --request-timeout 1
    assert b"201" not in received


async def test_posts_are_limited_per_address_by_default(tmp_path, video):
    with ServerProcess(f"sqlite:///{tmp_path}/c.db", client_limits=()) as running:
        async with httpx.AsyncClient(base_url=running.url) as client:
            statuses = [
                (await client.post(f"/comments/{video}", json={"message": f"m{n}"})).status_code
                for n in range(31)
            ]
            history = (await client.get(f"/comments/{video}", params={"after": 0})).json()
    assert statuses == [201] * 30 + [429]  # a burst of 30, then 2 a second
    assert len(history["comments"]) == 30
