"""deploy/nginx.conf in front of real instances: whose address a request carries, how
many requests one address may have in progress, and what nginx answers while no instance
can (issue 10).

Each test runs a real nginx configured from deploy/nginx.conf (tests/nginx_server.py)
in front of real server processes; the EventSource test drives Chromium. One test
puts a stand-in that refuses every request with a 503, as a stopping instance does,
behind nginx.
"""

import asyncio
import contextlib
import json
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser

from tests.http_checks import assert_json_error
from tests.nginx_server import Nginx
from tests.server_process import ServerProcess
from tests.sse_client import open_stream

NGINX_BODY_LIMIT = 1024 * 1024  # client_max_body_size in deploy/nginx.conf
BLANK_PAGE = "<!doctype html><title>blank</title>"
# An EventSource on the page, and what it went through: comment messages, opens, and when
# (the page's clock, ms) it gave up for good (readyState CLOSED).
WATCH_STREAM = """(url) => {
  const watch = { messages: [], opens: 0, closedAt: null };
  const source = new EventSource(url);
  source.addEventListener("open", () => { watch.opens += 1; });
  source.addEventListener("comment", (event) => {
    watch.messages.push(JSON.parse(event.data).message);
  });
  source.addEventListener("error", () => {
    if (source.readyState === EventSource.CLOSED && watch.closedAt === null) {
      watch.closedAt = performance.now();
    }
  });
  watch.source = source;
  window.watch = watch;
}"""


def nginx_folder(parent: Path) -> Path:
    folder = parent / "nginx"
    folder.mkdir()
    return folder


def sqlite_url(folder: Path, name: str = "comments.db") -> str:
    return f"sqlite:///{folder / name}"


# ---------------------------------------------------------------------------
# The client's address is the one nginx saw


async def test_a_client_naming_other_addresses_is_counted_as_itself(tmp_path, video):
    limited = ("--post-rate", "1", "--post-burst", "1", "--trust-proxy", "127.0.0.1")
    with (
        ServerProcess(sqlite_url(tmp_path), *limited) as instance,
        Nginx(nginx_folder(tmp_path), [instance.port]) as nginx,
    ):
        async with httpx.AsyncClient(base_url=nginx.url, timeout=10) as forger:
            statuses = []
            for i in range(3):
                forged = {"X-Real-IP": f"10.0.0.{i}", "X-Forwarded-For": f"10.0.0.{i}"}
                response = await forger.post(
                    f"/comments/{video}", json={"message": f"forged {i}"}, headers=forged
                )
                statuses.append(response.status_code)
        assert statuses == [201, 429, 429]
        # nginx names the address it saw: a client on another one has its own allowance
        other_address = httpx.AsyncHTTPTransport(local_address="127.0.0.2")
        async with httpx.AsyncClient(
            base_url=nginx.url, transport=other_address, timeout=10
        ) as other:
            response = await other.post(f"/comments/{video}", json={"message": "other"})
            assert response.status_code == 201, response.text


# ---------------------------------------------------------------------------
# No instance to answer


@pytest.fixture(scope="module")
def nginx_without_instances(tmp_path_factory):
    """nginx in front of two instances that served through it and then stopped."""
    folder = tmp_path_factory.mktemp("stopped")
    with contextlib.ExitStack() as running:
        instances = [
            running.enter_context(ServerProcess(sqlite_url(folder, f"{n}.db"))) for n in range(2)
        ]
        nginx = running.enter_context(Nginx(nginx_folder(folder), [i.port for i in instances]))
        assert httpx.get(f"{nginx.url}/healthz").status_code == 200
        for instance in instances:
            assert instance.terminate() == 0
        yield nginx


async def test_a_stream_no_instance_can_take_is_told_to_come_back(nginx_without_instances, video):
    async with httpx.AsyncClient(base_url=nginx_without_instances.url, timeout=10) as http:
        response = await http.get(f"/comments/{video}/stream")
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/event-stream"), response.headers
    assert response.headers["Cache-Control"] == "no-cache"
    fields = [line.partition(":")[0] for line in response.text.splitlines() if line]
    assert "retry" in fields, response.text
    assert not {"id", "event", "data"} & set(fields), response.text  # no event


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/comments/{video}"),
        ("POST", "/comments/{video}"),
        ("GET", "/comments/{video}/poll"),
        ("GET", "/healthz"),
        ("GET", "/static/app.js"),
    ],
)
async def test_an_api_request_no_instance_answers_gets_a_json_502(
    nginx_without_instances, video, method, path
):
    async with httpx.AsyncClient(base_url=nginx_without_instances.url, timeout=10) as http:
        response = await http.request(
            method, path.format(video=video), json={"message": "m"} if method == "POST" else None
        )
    assert_json_error(response, 502, "unavailable")


async def test_a_body_past_nginx_limit_gets_a_json_413(nginx_without_instances, video):
    async with httpx.AsyncClient(base_url=nginx_without_instances.url, timeout=10) as http:
        response = await http.post(
            f"/comments/{video}",
            content=b"x" * (NGINX_BODY_LIMIT + 1),
            headers={"Content-Type": "application/json"},
        )
    assert_json_error(response, 413, "body_too_large")


class RefusingInstance:
    """Answers every request 503 `shutting_down` in JSON and closes, as a stopping
    instance answers on a connection it still holds."""

    BODY = b'{"error":{"code":"shutting_down","message":"the server is stopping"}}'

    async def __aenter__(self) -> "RefusingInstance":
        self.server = await asyncio.start_server(self._answer, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()
        await self.server.wait_closed()

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(self.BODY), self.BODY)
        )
        await writer.drain()
        writer.close()


async def test_an_instance_refusing_a_stream_is_answered_with_a_retry(tmp_path, video):
    async with RefusingInstance() as refusing:
        with Nginx(nginx_folder(tmp_path), [refusing.port]) as nginx:
            async with httpx.AsyncClient(base_url=nginx.url, timeout=10) as http:
                stream = await http.get(f"/comments/{video}/stream")
                history = await http.get(f"/comments/{video}")
    assert stream.status_code == 200, stream.text
    assert stream.headers["Content-Type"].startswith("text/event-stream")
    assert "retry:" in stream.text
    # any other answer of an instance passes as it is
    assert history.status_code == 503
    assert history.content == RefusingInstance.BODY


# ---------------------------------------------------------------------------
# A browser's EventSource through a restart of its instance


@pytest.mark.parametrize("stop", ["SIGTERM", "SIGKILL"])
async def test_eventsource_through_nginx_outlives_a_restart_of_its_instance(
    browser: Browser, tmp_path, video, stop
):
    store = sqlite_url(tmp_path)
    with contextlib.ExitStack() as running:
        first = running.enter_context(ServerProcess(store))
        nginx = running.enter_context(Nginx(nginx_folder(tmp_path), [first.port]))
        page = await browser.new_page()
        await page.route(f"{nginx.url}/blank", lambda route: route.fulfill(body=BLANK_PAGE))
        await page.goto(f"{nginx.url}/blank")
        await page.evaluate(WATCH_STREAM, f"/comments/{video}/stream")
        await page.wait_for_function("watch.opens === 1")
        async with httpx.AsyncClient(base_url=nginx.url, timeout=10) as http:
            await post_through(http, video, "before")
            await page.wait_for_function("watch.messages.length === 1")

            if stop == "SIGTERM":
                assert first.terminate() == 0
            else:
                first.kill()
            stopped_at = await page.evaluate("performance.now()")
            await asyncio.sleep(3)  # the browser retries meanwhile, and nginx answers
            closed_at = await page.evaluate("watch.closedAt")
            assert closed_at is None, f"EventSource gave up {closed_at - stopped_at:.0f} ms after"

            running.enter_context(ServerProcess(store, "--port", str(first.port)))
            await post_through(http, video, "after")
            await page.wait_for_function("watch.messages.length === 2", timeout=10_000)
        await asyncio.sleep(0.5)  # time for a duplicate to show up
        watch = await page.evaluate(
            "({messages: watch.messages, closedAt: watch.closedAt, state: watch.source.readyState})"
        )
        assert watch == {"messages": ["before", "after"], "closedAt": None, "state": 1}


async def post_through(http: httpx.AsyncClient, video: str, message: str) -> None:
    response = await http.post(f"/comments/{video}", json={"message": message})
    assert response.status_code == 201, response.text
    assert json.loads(response.text)["message"] == message


# ---------------------------------------------------------------------------
# One address behind nginx


async def test_one_address_holds_at_most_100_requests_through_nginx(tmp_path, video):
    unlimited = ("--trust-proxy", "127.0.0.1")  # the instance's own caps off (the default)
    with (
        ServerProcess(sqlite_url(tmp_path), *unlimited) as instance,
        Nginx(nginx_folder(tmp_path), [instance.port]) as nginx,
    ):
        path = f"/comments/{video}/stream"
        streams = [await open_stream("127.0.0.1", nginx.port, path) for _ in range(100)]
        try:
            assert {stream.status for stream in streams} == {200}
            async with httpx.AsyncClient(base_url=nginx.url, timeout=10) as http:
                assert_json_error(await http.get(path), 429, "too_many_connections")
                refused = await http.get(f"/comments/{video}")
                assert_json_error(refused, 429, "too_many_connections")
                assert refused.headers["Retry-After"] == "5"
            other_address = httpx.AsyncHTTPTransport(local_address="127.0.0.2")
            async with httpx.AsyncClient(base_url=nginx.url, transport=other_address) as other:
                assert (await other.get(f"/comments/{video}")).status_code == 200
        finally:
            for stream in streams:
                stream.close()


async def test_an_instance_refusing_a_stream_with_429_is_passed_as_it_is(tmp_path, video):
    capped = ("--max-streams-per-ip", "1", "--trust-proxy", "127.0.0.1")
    with (
        ServerProcess(sqlite_url(tmp_path), *capped) as instance,
        Nginx(nginx_folder(tmp_path), [instance.port]) as nginx,
    ):
        path = f"/comments/{video}/stream"
        first = await open_stream("127.0.0.1", nginx.port, path)
        try:
            assert first.status == 200
            async with httpx.AsyncClient(base_url=nginx.url, timeout=10) as http:
                assert_json_error(await http.get(path), 429, "too_many_streams")
        finally:
            first.close()
