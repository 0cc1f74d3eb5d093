"""Fault-injection scenarios against real processes, each counting what every viewer got.

Every scenario starts what it needs (livecomments instances, NATS, FerretDB, nginx),
posts comments at a steady rate while viewers watch over SSE, injects one fault,
waits until the system is quiet again and returns a `FaultResult`: how many
comments were sent, acknowledged (201) and refused, what each viewer received,
and how that compares with the store's history (lost, duplicated, out of order).

tests/test_faults.py asserts the guarantees on these results; scripts/reliability
runs every scenario and prints the counts as a table:

    .venv/bin/python -m tests.faults            # all scenarios
    .venv/bin/python -m tests.faults store_outage slow_viewers

Viewers reconnect like a browser's EventSource (a short retry, then the same URL
with `Last-Event-ID`). A scenario also records evidence that its fault happened
(the victim's exit status, a NATS node's port refusing connections, refused
posts, cut-off viewers), so a run in which nothing went wrong cannot pass.
"""

import asyncio
import contextlib
import contextvars
import functools
import itertools
import json
import resource
import signal
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ParamSpec, Protocol

import httpx

from tests.metrics import scrape
from tests.mongo_server import FerretDB
from tests.nats_server import NatsCluster
from tests.nginx_server import Nginx
from tests.ports import accepts
from tests.server_process import ServerProcess
from tests.sse_client import SseStream, open_stream

MAX_MESSAGE_CHARS = 500  # livecomments/validation.py
RETRY_SECONDS = 0.2  # the viewers' reconnect delay (a browser's EventSource waits `retry:`)
SETTLE_SECONDS = 30.0  # how long viewers may take to catch up once posting stops


# ---------------------------------------------------------------------------
# Scenarios clean up after themselves, also when one fails half-way


class Stoppable(Protocol):
    async def stop(self) -> None: ...


_RUNNING: contextvars.ContextVar[list[Stoppable]] = contextvars.ContextVar("running")
P = ParamSpec("P")


def scenario(run: Callable[P, Awaitable["FaultResult"]]) -> Callable[P, Awaitable["FaultResult"]]:
    """Stop every viewer and poster the scenario started, however it ends."""

    @functools.wraps(run)
    async def running(*args: P.args, **kwargs: P.kwargs) -> "FaultResult":
        started: list[Stoppable] = []
        token = _RUNNING.set(started)
        try:
            return await run(*args, **kwargs)
        finally:
            _RUNNING.reset(token)
            for thing in reversed(started):
                await thing.stop()

    return running


def _started(thing: Stoppable) -> None:
    running = _RUNNING.get(None)
    if running is not None:
        running.append(thing)


# ---------------------------------------------------------------------------
# Results


@dataclass
class ViewerCount:
    """What one viewer received, compared with the store."""

    delivered: int = 0
    lost: int = 0  # in the store, never received
    duplicated: int = 0  # received more than once
    out_of_order: int = 0  # received after a higher seq
    unknown: int = 0  # received, but not in the store (or with another message)
    reconnects: int = 0


@dataclass
class FaultResult:
    name: str
    fault: str = ""
    sent: int = 0
    acknowledged: int = 0
    refused: int = 0
    refusals: Counter[str] = field(default_factory=Counter)
    stored: int = 0  # comments in the store's history at the end
    acknowledged_not_stored: int = 0  # a 201 for a comment the store does not have
    refused_but_stored: int = 0  # refused to the client, committed all the same
    stored_twice: int = 0  # extra copies of a message in the store
    unclean_refusals: int = 0  # a 5xx from the service whose body is not a JSON error
    viewers: list[ViewerCount] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def delivered(self) -> list[int]:
        return [viewer.delivered for viewer in self.viewers]

    @property
    def lost(self) -> int:
        return sum(viewer.lost for viewer in self.viewers)

    @property
    def duplicated(self) -> int:
        return sum(viewer.duplicated for viewer in self.viewers)

    @property
    def out_of_order(self) -> int:
        return sum(viewer.out_of_order for viewer in self.viewers)

    @property
    def unknown(self) -> int:
        return sum(viewer.unknown for viewer in self.viewers)


# ---------------------------------------------------------------------------
# Viewers


class Viewer:
    """An SSE client that reconnects like EventSource, recording every comment it gets.

    `latency` entries are filled when a comment's message starts with its send
    time (`Poster(stamp=True)`).
    """

    def __init__(
        self, host: str, port: int, video: str, *, retry: float = RETRY_SECONDS, after: int = 0
    ) -> None:
        self.host, self.port, self.video = host, port, video
        self.after = after  # the first connection asks for every comment after this seq
        self.retry = retry
        self.received: list[tuple[int, str]] = []  # (seq, message) in arrival order
        self.latencies: list[float] = []
        self.reconnects = 0
        self.clean_ends = 0  # the server finished the chunked response
        self.broken_ends = 0  # the connection broke mid-stream
        self.failed_connects = 0
        self.statuses: Counter[int] = Counter()
        self.connections = 0
        self._heartbeats_closed = 0
        self._stream: SseStream | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    @property
    def last_id(self) -> int | None:
        return self.received[-1][0] if self.received else None

    @property
    def seqs(self) -> list[int]:
        return [seq for seq, _ in self.received]

    @property
    def heartbeats(self) -> int:
        live = self._stream.comments.count("heartbeat") if self._stream is not None else 0
        return self._heartbeats_closed + live

    async def start(self) -> "Viewer":
        """Connect (the first connection must succeed), then read in the background."""
        self._stream = await self._connect()
        if self._stream is None:
            raise RuntimeError(f"viewer could not connect to {self.host}:{self.port}")
        self._task = asyncio.create_task(self._run())
        _started(self)
        return self

    async def _connect(self) -> SseStream | None:
        last_id = self.after if self.last_id is None else self.last_id
        headers = {"Last-Event-ID": str(last_id)}
        try:
            stream = await open_stream(
                self.host, self.port, f"/comments/{self.video}/stream", headers
            )
        except (OSError, EOFError, ValueError, IndexError, TimeoutError):
            self.failed_connects += 1
            return None
        self.statuses[stream.status] += 1
        if stream.status != 200:
            stream.close()
            self.failed_connects += 1
            return None
        self.connections += 1
        return stream

    async def _run(self) -> None:
        while not self._stopping:
            stream = self._stream
            if stream is None:
                await asyncio.sleep(self.retry)
                self._stream = await self._connect()
                continue
            try:
                while True:
                    event = await stream._next_event()
                    if event.event == "comment":
                        self._record(event.seq, event.data)
            except EOFError:
                if stream.ended:
                    self.clean_ends += 1
                else:
                    self.broken_ends += 1
            except (OSError, ValueError):
                self.broken_ends += 1
            self._drop_stream()
            self.reconnects += 1

    def _record(self, seq: int, data: str) -> None:
        message = json.loads(data)["message"]
        self.received.append((seq, message))
        stamp = message.partition(" ")[0]
        if stamp.startswith("t="):
            self.latencies.append(time.time() - float(stamp[2:]))

    def _drop_stream(self) -> None:
        if self._stream is not None:
            self._heartbeats_closed += self._stream.comments.count("heartbeat")
            self._stream.close()
            self._stream = None

    async def stop(self) -> None:
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._drop_stream()
        await asyncio.sleep(0)  # let the transports close

    def compare(self, history: list[tuple[int, str]]) -> ViewerCount:
        stored = dict(history)
        seqs = self.seqs
        counts = Counter(seqs)
        return ViewerCount(
            delivered=len(seqs),
            lost=sum(1 for seq in stored if seq not in counts),
            duplicated=sum(n - 1 for n in counts.values()),
            out_of_order=sum(1 for a, b in itertools.pairwise(seqs) if b < a),
            unknown=sum(1 for seq, message in self.received if stored.get(seq) != message),
            reconnects=self.reconnects,
        )


# ---------------------------------------------------------------------------
# Posting


@dataclass
class Outcome:
    message: str
    status: int | None  # None: no HTTP answer (connection error, timeout)
    seq: int | None = None
    error: str = ""  # the JSON error code, or the exception's name
    json_error: bool = False
    key: str | None = None  # the Idempotency-Key it was sent with
    replayed: bool = False  # a 201 for a key the store already had
    sent_at: float = 0.0  # time.monotonic()
    answered_at: float = 0.0


class Poster:
    """Posts comments at a steady rate, spread over `urls`, recording every outcome.

    At most `concurrency` posts are in flight, so a stalled service slows the
    poster down instead of piling up requests. `stamp` starts each message with its
    send time, for latency; `size` pads messages to about that many bytes; `keyed`
    sends each comment with an Idempotency-Key of its own, so `retry_refused` can
    post the refused ones again as a careful client would.
    """

    def __init__(
        self,
        urls: list[str],
        video: str,
        *,
        rate: float,
        concurrency: int = 10,
        timeout: float = 10.0,
        size: int = 0,
        stamp: bool = False,
        burst: int = 1,
        keyed: bool = False,
    ) -> None:
        self.urls = urls
        self.video = video
        self.rate = rate
        self.burst = burst
        self.size = size
        self.stamp = stamp
        self.keyed = keyed
        self.timeout = timeout
        self.outcomes: list[Outcome] = []
        self._clients = [
            httpx.AsyncClient(
                base_url=url,
                timeout=timeout,
                limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=10),
            )
            for url in urls
        ]
        self._slots = asyncio.Semaphore(concurrency)
        self._pending: set[asyncio.Task[None]] = set()
        self._count = 0
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> "Poster":
        self._task = asyncio.create_task(self._run())
        _started(self)
        return self

    async def _run(self) -> None:
        interval = self.burst / self.rate
        next_at = time.monotonic()
        while not self._stop.is_set():
            for _ in range(self.burst):
                await self._slots.acquire()
                client = self._clients[self._count % len(self._clients)]
                message = self._message()
                key = f"k{self._count}" if self.keyed else None
                task = asyncio.create_task(self._post(client, message, key))
                self._pending.add(task)
                task.add_done_callback(self._pending.discard)
            next_at += interval
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), max(0.0, next_at - time.monotonic()))

    def _message(self) -> str:
        self._count += 1
        text = f"c{self._count}"
        if self.stamp:
            text = f"t={time.time():.6f} {text}"
        if self.size > len(text):  # 4-byte characters: 2 KB within the 500-character limit
            room = min(MAX_MESSAGE_CHARS - len(text) - 1, (self.size - len(text) - 1) // 4)
            text += " " + "\N{GRINNING FACE}" * room
        return text

    async def _post(self, client: httpx.AsyncClient, message: str, key: str | None) -> None:
        try:
            outcome = await self._send(client, message, key)
        finally:
            self._slots.release()
        self.outcomes.append(outcome)

    async def _send(self, client: httpx.AsyncClient, message: str, key: str | None) -> Outcome:
        sent_at = time.monotonic()
        headers = {"Idempotency-Key": key} if key else {}
        try:
            response = await client.post(
                f"/comments/{self.video}", json={"message": message}, headers=headers
            )
        except httpx.HTTPError as exc:
            return Outcome(message, None, error=type(exc).__name__, sent_at=sent_at, key=key)
        outcome = Outcome(message, response.status_code, sent_at=sent_at, key=key)
        outcome.answered_at = time.monotonic()
        outcome.replayed = response.headers.get("Idempotent-Replayed") == "true"
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code == 201 and isinstance(body, dict):
            outcome.seq = body.get("seq")
        elif isinstance(body, dict) and isinstance(body.get("error"), dict):
            outcome.error = str(body["error"].get("code", ""))
            outcome.json_error = bool(outcome.error)
        return outcome

    @property
    def acknowledged(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == 201]

    @property
    def refused(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status != 201]

    async def wait_acknowledged(self, count: int, within: float) -> None:
        """Wait until `count` more posts than now were acknowledged."""
        target = len(self.acknowledged) + count
        await poll(lambda: len(self.acknowledged) >= target, within, "posts acknowledged")

    async def retry_refused(self) -> list[Outcome]:
        """Post every refused comment again, one at a time, with its Idempotency-Key."""
        assert self.keyed, "a retry without the key could store a comment twice"
        async with httpx.AsyncClient(base_url=self.urls[0], timeout=self.timeout) as client:
            return [await self._send(client, o.message, o.key) for o in self.refused]

    async def stop(self) -> None:
        """Stop sending, let the posts in flight finish, close the clients."""
        self._stop.set()
        if self._task is not None:
            await self._task
        await asyncio.gather(*self._pending, return_exceptions=True)
        for client in self._clients:
            if not client.is_closed:
                await client.aclose()


# ---------------------------------------------------------------------------
# Helpers


async def poll(condition: Callable[[], bool], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {within}s")
        await asyncio.sleep(0.05)


async def history(base_url: str, video: str) -> list[tuple[int, str]]:
    """Every stored comment of `video` as (seq, message), oldest first."""
    comments: list[tuple[int, str]] = []
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        while True:
            after = comments[-1][0] if comments else 0
            response = await client.get(f"/comments/{video}", params={"after": after, "limit": 200})
            response.raise_for_status()
            page = response.json()["comments"]
            comments += [(c["seq"], c["message"]) for c in page]
            if len(page) < 200:
                return comments


async def status_of(base_url: str, path: str) -> int | None:
    try:
        async with httpx.AsyncClient(base_url=base_url, timeout=5) as client:
            return (await client.get(path)).status_code
    except httpx.HTTPError:
        return None


async def settle(viewers: list[Viewer], last_seq: int, within: float = SETTLE_SECONDS) -> None:
    """Wait until every viewer has received `last_seq` (or give up; the counts will tell)."""
    with contextlib.suppress(AssertionError):
        await poll(
            lambda: all((v.last_id or 0) >= last_seq for v in viewers), within, "viewers settle"
        )


def tally(
    result: FaultResult, poster: Poster, stored: list[tuple[int, str]], viewers: list[Viewer]
) -> FaultResult:
    """Fill `result` from what was posted, what the store has and what the viewers got."""
    stored_messages = {message: seq for seq, message in stored}
    result.sent = len(poster.outcomes)
    result.acknowledged = len(poster.acknowledged)
    result.refused = len(poster.refused)
    for outcome in poster.refused:
        kind = str(outcome.status) if outcome.status is not None else outcome.error
        if outcome.error and outcome.status is not None:
            kind += f" {outcome.error}"
        result.refusals[kind] += 1
        # nginx's own 502/504 pages are HTML: a connection error seen through the proxy
        status = outcome.status
        if status is not None and status >= 500 and status not in (502, 504):
            result.unclean_refusals += 0 if outcome.json_error else 1
        if outcome.message in stored_messages:
            result.refused_but_stored += 1
    result.stored = len(stored)
    result.stored_twice = len(stored) - len(stored_messages)
    result.acknowledged_not_stored = sum(
        1 for o in poster.acknowledged if stored_messages.get(o.message) != o.seq
    )
    result.viewers = [viewer.compare(stored) for viewer in viewers]
    result.details["store seqs dense"] = [seq for seq, _ in stored] == list(
        range(1, len(stored) + 1)
    )
    return result


def new_video() -> str:
    return "f-" + uuid.uuid4().hex[:12]


@contextlib.contextmanager
def started(*processes: Any) -> Iterator[None]:
    """Enter context managers (processes) in order, leave them in reverse."""
    with contextlib.ExitStack() as stack:
        for process in processes:
            stack.enter_context(process)
        yield


async def stop_viewers(viewers: list[Viewer]) -> None:
    for viewer in viewers:
        await viewer.stop()


async def serving_instance(nginx_url: str, instances: list[ServerProcess], video: str) -> int:
    """The index of the instance nginx sends `video` to: post once, see whose count moved."""
    name = "livecomments_comments_posted_total"
    before = [await scrape(s.url, name) for s in instances]
    async with httpx.AsyncClient(base_url=nginx_url, timeout=10) as client:
        response = await client.post(f"/comments/{video}", json={"message": "find me"})
        assert response.status_code == 201, response.text
    after = [await scrape(s.url, name) for s in instances]
    moved = [i for i, (a, b) in enumerate(zip(before, after, strict=True)) if b > a]
    assert len(moved) == 1, (before, after)
    return moved[0]


def instance_on(store_url: str, bus_url: str, *args: str) -> ServerProcess:
    return ServerProcess(store_url, "--heartbeat", "0.5", *args, bus_url=bus_url)


@dataclass
class BehindNginx:
    """Three instances (one NATS server, one store) behind nginx, and viewers watching
    a video through nginx, so on the instance nginx sends that video to."""

    video: str
    store_url: str
    nats: NatsCluster
    servers: list[ServerProcess]
    nginx: Nginx
    serving: int  # index in `servers` of the instance serving `video`
    viewers: list[Viewer]


@contextlib.asynccontextmanager
async def watched_behind_nginx(
    workdir: Path, mongo: FerretDB, database: str, viewers_count: int
) -> AsyncIterator[BehindNginx]:
    video = new_video()
    store_url = mongo.url(database + uuid.uuid4().hex[:6])
    (workdir / "nginx").mkdir(exist_ok=True)
    with NatsCluster(workdir, size=1) as nats:
        servers = [instance_on(store_url, nats.url) for _ in range(3)]
        with started(*servers), Nginx(workdir / "nginx", [s.port for s in servers]) as nginx:
            serving = await serving_instance(nginx.url, servers, video)
            viewers = [
                await Viewer("127.0.0.1", nginx.port, video).start() for _ in range(viewers_count)
            ]
            yield BehindNginx(video, store_url, nats, servers, nginx, serving, viewers)


# ---------------------------------------------------------------------------
# 1. kill -9 one of three instances behind nginx


@scenario
async def kill_instance(
    workdir: Path, mongo: FerretDB, *, fault_seconds: float = 4.0, viewers_count: int = 4
) -> FaultResult:
    """SIGKILL the instance nginx sends a video to, while its viewers watch and posts flow."""
    result = FaultResult("kill_instance", "SIGKILL the instance serving the video (behind nginx)")
    async with watched_behind_nginx(workdir, mongo, "faults_kill_", viewers_count) as setup:
        victim = setup.servers[setup.serving]
        poster = Poster([setup.nginx.url], setup.video, rate=40, burst=2, keyed=True).start()
        await poster.wait_acknowledged(20, within=15)
        await asyncio.to_thread(victim.kill)
        result.details["victim exit"] = victim.process.returncode if victim.process else None
        await asyncio.sleep(fault_seconds)
        await poster.wait_acknowledged(20, within=15)  # served again by the others
        await poster.stop()
        survivor = next(s for s in setup.servers if s is not victim)
        stored = await history(survivor.url, setup.video)
        await settle(setup.viewers, stored[-1][0] if stored else 0)
        await stop_viewers(setup.viewers)
        result.details["viewers reconnected"] = [v.reconnects for v in setup.viewers]
        tally(result, poster, stored, setup.viewers)
        await retry_refused(result, poster, survivor.url)
    return result


# ---------------------------------------------------------------------------
# 2. kill one node of a three-node NATS cluster


@scenario
async def kill_nats_node(
    workdir: Path, mongo: FerretDB, *, fault_seconds: float = 4.0
) -> FaultResult:
    """Instances each on their own NATS node; SIGKILL one node while posts flow to all."""
    result = FaultResult("kill_nats_node", "SIGKILL one node of a 3-node NATS cluster")
    video = new_video()
    store_url = mongo.url("faults_nats_" + uuid.uuid4().hex[:6])
    with NatsCluster(workdir, size=3) as nats:
        servers = [instance_on(store_url, nats.node_url(i)) for i in range(3)]
        with started(*servers):
            viewers = [
                await Viewer(s.host, s.port, video).start() for s in servers for _ in range(2)
            ]
            poster = Poster([s.url for s in servers], video, rate=60, burst=3).start()
            await poster.wait_acknowledged(30, within=15)
            node = nats.nodes[0]
            await asyncio.to_thread(node.kill)
            result.details["node down"] = node.process is None and not accepts(node.port)
            await asyncio.sleep(fault_seconds)
            await poster.stop()
            stored = await history(servers[1].url, video)
            await settle(viewers, stored[-1][0] if stored else 0)
            await stop_viewers(viewers)
            filled = [await scrape(s.url, "livecomments_filled_from_store_total") for s in servers]
            result.details["filled from store"] = int(sum(filled))
            result.details["viewers reconnected"] = sum(v.reconnects for v in viewers)
    return tally(result, poster, stored, viewers)


# ---------------------------------------------------------------------------
# 3. the MongoDB-protocol store goes away for ~10 s


@scenario
async def store_outage(workdir: Path, *, outage_seconds: float = 10.0) -> FaultResult:
    """Stop a dedicated FerretDB mid-flow and start it again on the same port and data."""
    result = FaultResult("store_outage", f"stop FerretDB for {outage_seconds:.0f} s, restart it")
    video = new_video()
    (workdir / "ferretdb").mkdir(exist_ok=True)
    mongo = FerretDB(workdir / "ferretdb")
    with mongo, NatsCluster(workdir, size=1) as nats:
        store_url = mongo.url("faults_outage")
        servers = [instance_on(store_url, nats.url) for _ in range(2)]
        with started(*servers):
            viewers = [
                await Viewer(s.host, s.port, video).start() for s in servers for _ in range(2)
            ]
            poster = Poster(
                [s.url for s in servers], video, rate=20, concurrency=4, keyed=True
            ).start()
            await poster.wait_acknowledged(20, within=15)
            heartbeats_before = [v.heartbeats for v in viewers]
            acknowledged_before = len(poster.acknowledged)
            stopping_at = time.monotonic()
            await asyncio.to_thread(mongo.stop)
            stopped_at = time.monotonic()
            result.details["seconds FerretDB took to stop"] = round(stopped_at - stopping_at, 1)
            ready_down = []
            for server in servers:
                ready_down.append(await wait_for_status(server.url, "/readyz", 503, 10))
            result.details["readyz 503 while down"] = all(ready_down)
            await asyncio.sleep(max(0.0, outage_seconds - (time.monotonic() - stopped_at)))
            down = (stopped_at, time.monotonic())
            result.details["refused while down"] = len(poster.refused)
            result.details["201 sent and answered while down"] = sum(
                1 for o in poster.acknowledged if down[0] < o.sent_at and o.answered_at < down[1]
            )
            result.details["201 after the stop began"] = (
                len(poster.acknowledged) - acknowledged_before
            )
            result.details["heartbeats while down (min)"] = min(
                v.heartbeats - h for v, h in zip(viewers, heartbeats_before, strict=True)
            )
            await asyncio.to_thread(mongo.start)
            restarted_at = time.monotonic()
            await poster.wait_acknowledged(20, within=30)
            result.details["seconds to first 201s after restart"] = round(
                time.monotonic() - restarted_at, 1
            )
            ready_up = [await wait_for_status(s.url, "/readyz", 200, 30) for s in servers]
            result.details["readyz 200 after"] = all(ready_up)
            await poster.stop()
            stored = await history(servers[0].url, video)
            await settle(viewers, stored[-1][0] if stored else 0)
            await stop_viewers(viewers)
            result.details["stream connections per viewer"] = [v.connections for v in viewers]
            result.details["viewers reconnected"] = sum(v.reconnects for v in viewers)
            tally(result, poster, stored, viewers)
            stored_messages = {message for _, message in stored}
            result.details["refused, sent once it had stopped, stored"] = sum(
                1 for o in poster.refused if o.sent_at > stopped_at and o.message in stored_messages
            )
            await retry_refused(result, poster, servers[0].url)
    return result


async def retry_refused(result: FaultResult, poster: Poster, base_url: str) -> None:
    """Post the refused comments again with their keys; record what that gave."""
    retries = await poster.retry_refused()
    result.details["retries answered 201"] = sum(1 for o in retries if o.status == 201)
    result.details["retries replayed"] = sum(1 for o in retries if o.replayed)
    stored = [message for _, message in await history(base_url, poster.video)]
    result.details["stored twice after the retries"] = len(stored) - len(set(stored))


async def wait_for_status(base_url: str, path: str, status: int, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await status_of(base_url, path) == status:
            return True
        await asyncio.sleep(0.1)
    return False


# ---------------------------------------------------------------------------
# 4. SIGTERM (a restart) of the instance serving a video, behind nginx


@scenario
async def restart_instance(
    workdir: Path, mongo: FerretDB, *, viewers_count: int = 4
) -> FaultResult:
    """SIGTERM the instance nginx sends a video to, then start it again on its port."""
    result = FaultResult("restart_instance", "SIGTERM the serving instance, start it again")
    async with watched_behind_nginx(workdir, mongo, "faults_restart_", viewers_count) as setup:
        servers, index, viewers = setup.servers, setup.serving, setup.viewers
        victim = servers[index]
        # half the posts go straight to the victim, so some are in flight at the SIGTERM
        poster = Poster([setup.nginx.url, victim.url], setup.video, rate=80, burst=4).start()
        await poster.wait_acknowledged(20, within=15)
        exit_code = await asyncio.to_thread(victim.terminate)
        result.details["victim exit code"] = exit_code
        await poster.wait_acknowledged(20, within=15)  # served by another instance
        replacement = instance_on(setup.store_url, setup.nats.url, "--port", str(victim.port))
        await asyncio.to_thread(replacement.start)
        servers[index] = replacement
        try:
            await asyncio.sleep(1.0)
            await poster.wait_acknowledged(20, within=15)
            await poster.stop()
            stored = await history(servers[index - 1].url, setup.video)
            await settle(viewers, stored[-1][0] if stored else 0)
            await stop_viewers(viewers)
        finally:
            await asyncio.to_thread(replacement.__exit__)
        result.details["clean stream ends"] = sum(v.clean_ends for v in viewers)
        result.details["broken stream ends"] = sum(v.broken_ends for v in viewers)
        result.details["viewers reconnected"] = [v.reconnects for v in viewers]
    return tally(result, poster, stored, viewers)


# ---------------------------------------------------------------------------
# 5. a thousand viewers that stop reading


class RssSampler:
    """Samples a process's RSS every `interval` seconds on a thread; keeps the peak."""

    def __init__(self, server: ServerProcess, interval: float = 0.1) -> None:
        self.server = server
        self.interval = interval
        self.baseline = server.rss_bytes()
        self.peak = self.baseline
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            with contextlib.suppress(OSError, AssertionError):
                self.peak = max(self.peak, self.server.rss_bytes())

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


def raise_open_files_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


@scenario
async def slow_viewers(
    workdir: Path,
    *,
    stalled: int = 1000,
    healthy: int = 3,
    comment_bytes: int = 2048,
    rate: float = 100.0,
    viewer_buffer: int | None = None,
) -> FaultResult:
    """`stalled` viewers that never read, on one instance, while ~2 KB comments flow."""
    buffer_note = f", --viewer-buffer {viewer_buffer}" if viewer_buffer else ""
    result = FaultResult(
        "slow_viewers", f"{stalled} SSE viewers stop reading, {comment_bytes} B comments"
    )
    result.fault += buffer_note
    raise_open_files_limit(stalled + 500)
    video = new_video()
    args = ["--viewer-buffer", str(viewer_buffer)] if viewer_buffer else []
    server = ServerProcess(f"sqlite:///{workdir}/slow.db", *args)
    stalls: list[SseStream] = []
    with server:
        viewers = [await Viewer(server.host, server.port, video).start() for _ in range(healthy)]
        for first in range(0, stalled, 100):
            stalls += await asyncio.gather(
                *(
                    open_stream(
                        server.host, server.port, f"/comments/{video}/stream", receive_buffer=1024
                    )
                    for _ in range(first, min(first + 100, stalled))
                )
            )
        try:
            result.details["stalled streams opened"] = sum(1 for s in stalls if s.status == 200)
            name = "livecomments_viewers_cut_off_total"
            cut_before = await scrape(server.url, name)
            with RssSampler(server) as rss:
                poster = Poster(
                    [server.url], video, rate=rate, burst=5, size=comment_bytes, stamp=True
                ).start()
                deadline = time.monotonic() + 40
                cut = 0.0
                while time.monotonic() < deadline:
                    cut = await scrape(server.url, name) - cut_before
                    if cut >= stalled:
                        break
                    await asyncio.sleep(0.5)
                await asyncio.sleep(2.0)  # a while with the healthy viewers alone
                await poster.stop()
                stored = await history(server.url, video)
                await settle(viewers, stored[-1][0] if stored else 0)
            result.details["viewers cut off"] = int(cut)
            result.details["RSS baseline MB"] = round(rss.baseline / 2**20, 1)
            result.details["RSS peak growth MB"] = round((rss.peak - rss.baseline) / 2**20, 1)
            latencies = sorted(latency for v in viewers for latency in v.latencies)
            result.details["healthy latencies measured"] = len(latencies)
            result.details["healthy latency p50 ms"] = milliseconds(percentile(latencies, 0.50))
            result.details["healthy latency p99 ms"] = milliseconds(percentile(latencies, 0.99))
            result.details["healthy latency max ms"] = milliseconds(percentile(latencies, 1.0))
        finally:
            for stream in stalls:
                stream.close()
            await stop_viewers(viewers)
    return tally(result, poster, stored, viewers)


def percentile(values: list[float], fraction: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def milliseconds(seconds: float | None) -> int | None:
    return None if seconds is None else round(seconds * 1000)


# ---------------------------------------------------------------------------
# Running every scenario: `python -m tests.faults`


async def _run_all(names: list[str]) -> list[FaultResult]:
    results = []
    with tempfile.TemporaryDirectory(prefix="livecomments-faults-") as tmp:
        root = Path(tmp)
        shared = root / "mongo"
        shared.mkdir()
        with FerretDB(shared) as mongo:
            scenarios: dict[str, Callable[[Path], Awaitable[FaultResult]]] = {
                "kill_instance": lambda d: kill_instance(d, mongo),
                "kill_nats_node": lambda d: kill_nats_node(d, mongo),
                "store_outage": lambda d: store_outage(d),
                "restart_instance": lambda d: restart_instance(d, mongo),
                "slow_viewers": lambda d: slow_viewers(d),
            }
            for name in names or list(scenarios):
                workdir = root / name
                workdir.mkdir()
                print(f"running {name} ...", file=sys.stderr, flush=True)
                results.append(await scenarios[name](workdir))
    return results


def table(results: list[FaultResult]) -> str:
    columns = [
        ("scenario", lambda r: r.name),
        ("sent", lambda r: r.sent),
        ("201", lambda r: r.acknowledged),
        ("refused", lambda r: r.refused),
        ("stored", lambda r: r.stored),
        ("201 not stored", lambda r: r.acknowledged_not_stored),
        ("viewers", lambda r: len(r.viewers)),
        ("delivered (min-max)", lambda r: f"{min(r.delivered)}-{max(r.delivered)}"),
        ("lost", lambda r: r.lost),
        ("dup", lambda r: r.duplicated),
        ("out of order", lambda r: r.out_of_order),
    ]
    rows = [[str(title) for title, _ in columns]]
    rows += [[str(cell(result)) for _, cell in columns] for result in results]
    widths = [max(len(row[i]) for row in rows) for i in range(len(columns))]
    lines = ["  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    for result in results:
        lines.append("")
        lines.append(f"{result.name}: {result.fault}")
        refusals = ", ".join(f"{kind} x{n}" for kind, n in sorted(result.refusals.items()))
        lines.append(f"  refusals: {refusals or 'none'}")
        lines.append(
            f"  refused but stored: {result.refused_but_stored}; "
            f"stored twice: {result.stored_twice}; "
            f"5xx without a JSON error: {result.unclean_refusals}; "
            f"unknown comments at viewers: {result.unknown}"
        )
        for key, value in result.details.items():
            lines.append(f"  {key}: {value}")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    results = asyncio.run(_run_all(argv))
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
