"""The fan-out benchmark: livecomments, nchan and Centrifugo side by side, one command.

    python -m bench.run            # everything, twice (about 18 minutes, more with many videos)
    python -m bench.run --quick    # a short smoke run of every scenario
    python -m bench.run --only quiet,spread,zipf,ingest-spread --server-root /tmp/lc-base \
        --out bench/results/many-videos   # many videos, of another checkout's server

Owns the scenarios, the pass rules and the results: each scenario runs for
every server in one invocation, twice (the repetitions alternate which server
goes first; Centrifugo only where scripts/install-centrifugo has built it, and
not in the ingest scenarios), and the results land in bench/results/ as
results.json, summary.md (the tables BENCHMARKS.md quotes) and the PNG plots.
A progress line per measurement goes to stderr.

Scenarios:
1. hot video: R comments/s into one video, N viewers stepped up; a step passes
   with p99 end-to-end latency < 200 ms, every post acknowledged at >= 95% of R
   (the publisher is open loop: a late post counts its wait as latency), every viewer
   got every comment, and no hole, duplicate or reordering on the sampled viewers
   (whose count by marker must also agree with their full parse: see bench.sse).
2. efficiency: server CPU seconds per million delivered comments at R=1000, N=200
   (the N=200 step of the ladder, which always runs); and fan-out only, less the
   server CPU of a baseline step with the same publisher and no viewers (N=0, run
   per server and repetition before its ladder, kept apart from the ladder's steps
   in `baseline`), since taking the posts costs the servers very differently.
3. idle: RSS growth per idle SSE connection at N=10,000.
4. ingest (livecomments only; the peers store nothing durably): the highest rate
   of posts into one video with p99 post latency < 50 ms, on SQLite and on
   MongoDB (FerretDB) with the plan's workers, and on SQLite with one worker per
   core (at least two) and nats-server as the bus; each configuration steps its
   own rates up to its first failure.

Many videos (bench.spread says which video each viewer watches and each post
goes to):
5. quiet: V videos with one viewer each, nobody posting (V from `quiet_videos`):
   the server's CPU in cores over a window after a warm-up (long enough for
   several of livecomments' 2 s checks of quiet videos), and RSS growth per
   watched video.
6. spread: one viewer on each of 5,000 videos, 500 comments/s spread evenly over
   them; posts/s accepted against offered, end-to-end latency, loss, duplicates
   and reordering per viewer, server CPU-s per million deliveries; passes by the
   hot video's rules.
7. zipf: 19,000 viewers over 10,000 videos by Zipf s=1.1, and 1,000 comments/s
   spread over the videos by the same law; the same measures and rules.
8. ingest-spread (livecomments only): scenario 4 with the posts spread round
   robin over 1,000 videos, in the same three configurations.

Every measured window also records the CPU seconds of the client side, which
shares the cores with the server: the load-generator processes
(`loadgen_cpu_s`) and this process (`publisher_cpu_s`: the publisher runs here,
next to the runner's own few /proc reads and command lines to the load
generators). Every step also records how fast the box was
just before and just after it (`box_cpu_ms`, `box_fsync_ms`: bench.box).
"""

import argparse
import asyncio
import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bench import loadgen
from bench.box import before_and_after, probe
from bench.publisher import Publisher, Target
from bench.servers import (
    CENTRIFUGO,
    FERRETDB,
    NCHAN_CONNECTIONS,
    Centrifugo,
    LiveComments,
    Nchan,
    Server,
    cpu_seconds,
    process_cpu_seconds,
    rss_bytes,
)
from bench.spread import Videos

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
HOT_P99_MS = 200.0
INGEST_P99_MS = 50.0
# One load generator below this, two (one per core) from here. Two from N = 200 were
# tried: nchan then passed only 100 / 200 viewers (500 / 300 with one, the run before),
# its one worker sharing both cores with two readers; so one reads below 1,000.
TWO_LOADGENS_FROM = 1000
CONNS_PER_LOADGEN = 6000  # well under the 20,000 open files one process may hold
SOURCES_PER_LOADGEN = 30  # 127.0.0.x source addresses, so ephemeral ports never run out
# How long the viewers may take to connect and get their response heads: livecomments at
# b45abc9 took 118 s for 20,000 quiet videos (19,981 of them), busy with its 2 s checks of
# the ones already open
READY_TIMEOUT_S = 300
SCENARIOS = ("hot", "idle", "ingest", "quiet", "spread", "zipf", "ingest-spread")
# What a progress line shows of a point, where the point has it
PROGRESS_KEYS = (
    *("n", "videos", "connected", "connect_s", "rate", "p50_ms", "p99_ms", "delivered_per_s"),
    *("missing", "holes", "cores", "events", "cpu_s", "loadgen_cpu_s", "publisher_cpu_s"),
    *("box_cpu_ms", "box_fsync_ms"),
)
ONE_INGEST_VIDEO = Videos("ingest")  # scenario 4's
# A scenario's measurement on a running server, given a video name prefix of its own
Measure = Callable[[Server, str], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class Plan:
    hot_steps: list[int]
    hot_rate: int
    efficiency_n: int
    idle_n: int
    ingest_rates: list[int]
    warmup: float
    window: float
    reps: int
    lc_workers: int
    quiet_videos: list[int]
    quiet_warmup: float
    quiet_window: float
    spread_videos: int
    spread_rate: int
    zipf_videos: int
    zipf_viewers: int
    zipf_rate: int
    zipf_s: float
    ingest_spread_videos: int


FULL = Plan(
    # Fine above 1,000 so that 10x nchan's 200-300 shows where it is reached. None above
    # 8,000: at 5,000 viewers x 1,000/s the server, load generators and publisher together
    # already took about 80% of the project's 2-core box.
    hot_steps=[100, 200, 300, 500, 700, 1000, 1250, 1500, 2000, 2500, 3000, 4000, 5000, 6000, 8000],
    hot_rate=1000,
    efficiency_n=200,
    idle_n=10000,
    ingest_rates=[500, 1000, 2000, 3000, 4000, 5000, 6000, 7000, 10000],
    warmup=2.0,
    window=8.0,
    reps=2,
    lc_workers=1,
    # 19,000, not 20,000: a process may hold at most 20,000 open files on the project's
    # machine (a hard limit it cannot raise), and each server holds one per viewer
    quiet_videos=[5000, 19000],
    quiet_warmup=5.0,
    quiet_window=20.0,  # ten of livecomments' 2 s checks of quiet videos
    spread_videos=5000,
    spread_rate=500,
    zipf_videos=10000,
    zipf_viewers=19000,
    zipf_rate=1000,
    zipf_s=1.1,
    ingest_spread_videos=1000,
)
QUICK = replace(
    FULL,
    hot_steps=[50, 200, 1000],
    idle_n=2000,
    ingest_rates=[500, 2000],
    warmup=1.0,
    window=3.0,
    reps=1,
    quiet_videos=[1000],
    quiet_warmup=2.0,
    quiet_window=5.0,
    spread_videos=500,
    spread_rate=100,
    zipf_videos=1000,
    zipf_viewers=2000,
    zipf_rate=200,
    ingest_spread_videos=100,
)


def progress(text: str) -> None:
    sys.stderr.write(f"[{time.strftime('%H:%M:%S')}] {text}\n")
    sys.stderr.flush()


class LoadGenerators:
    """Loadgen child processes sharing N viewers of `videos` on `server`'s streams (no
    process for N = 0)."""

    def __init__(self, server: Server, videos: Videos, conns: int, sample: int) -> None:
        self.server, self.videos = server, videos
        self.conns, self.sample = conns, sample
        self.procs: list[asyncio.subprocess.Process] = []

    async def __aenter__(self) -> "LoadGenerators":
        started = time.monotonic()
        count = math.ceil(self.conns / CONNS_PER_LOADGEN)  # none for no viewers
        if self.conns >= TWO_LOADGENS_FROM:
            count = max(count, 2)  # one per core for reading
        first = 0
        for index in range(count):
            share = self.conns // count + (1 if index < self.conns % count else 0)
            command = [sys.executable, "-m", "bench.loadgen", "--port", str(self.server.port)]
            command += ["--path", self.server.stream_path("{video}")]
            command += ["--format", self.server.stream_format]
            command += ["--token-secret", self.server.token_secret]
            command += ["--video-prefix", self.videos.prefix]
            command += ["--videos", str(self.videos.count), "--zipf-s", str(self.videos.zipf_s)]
            command += ["--viewers", str(self.conns), "--first-viewer", str(first)]
            command += ["--conns", str(share), "--sample", str(max(1, self.sample // count))]
            first += share
            command += ["--first-source", str(2 + index * SOURCES_PER_LOADGEN)]
            command += ["--sources", str(SOURCES_PER_LOADGEN)]
            self.procs.append(
                await asyncio.create_subprocess_exec(
                    *command,
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                    cwd=ROOT,
                )
            )
        ready = [await self._read(p, seconds=READY_TIMEOUT_S) for p in self.procs]
        self.ready = sum(int(r["ready"]) for r in ready)
        self.failed: dict[str, int] = {}  # viewers not connected, by why (see bench.loadgen)
        for answer in ready:
            for why, count in answer["failed"].items():
                self.failed[why] = self.failed.get(why, 0) + count
        self.connect_s = round(time.monotonic() - started, 1)
        return self

    async def _read(self, proc: asyncio.subprocess.Process, seconds: float = 30) -> dict[str, Any]:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), seconds)
        if not line:
            raise RuntimeError("a load generator exited early")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def pids(self) -> list[int]:
        return [proc.pid for proc in self.procs]

    async def ask(self, command: dict[str, Any]) -> list[dict[str, Any]]:
        for proc in self.procs:
            assert proc.stdin is not None
            proc.stdin.write((json.dumps(command) + "\n").encode())
        return [await self._read(p) for p in self.procs]

    async def __aexit__(self, *exc: object) -> None:
        for proc in self.procs:
            if proc.returncode is None:
                assert proc.stdin is not None
                proc.stdin.close()
        for proc in self.procs:
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()


def percentile_of_hist(hist: dict[int, int], fraction: float) -> float:
    total = sum(hist.values())
    if total == 0:
        return float("nan")
    rank, seen = fraction * total, 0
    for bucket in sorted(hist):
        seen += hist[bucket]
        if seen >= rank:
            return loadgen.bucket_value(bucket)
    return loadgen.bucket_value(max(hist))


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def cpu_now(server: Server, loadgens: list[int]) -> tuple[float, float, float]:
    """CPU seconds so far of the server's process tree, of the load generators and of
    this process (the publisher's)."""
    return (
        cpu_seconds(server.roots()),
        process_cpu_seconds(loadgens),
        process_cpu_seconds([os.getpid()]),
    )


def cpu_used(
    before: tuple[float, float, float], after: tuple[float, float, float]
) -> dict[str, float]:
    """The server's, the load generators' and the publisher's CPU seconds between two `cpu_now`."""
    keys = ("cpu_s", "loadgen_cpu_s", "publisher_cpu_s")
    return {key: round(b - a, 2) for key, a, b in zip(keys, before, after, strict=True)}


def target_for(server: Server) -> Target:
    if isinstance(server, Nchan):
        return Target.nchan(server.port)
    if isinstance(server, Centrifugo):
        return Target.centrifugo(server.port, server.api_key)
    return Target.livecomments(server.port)


async def fan_out_point(
    server: Server, plan: Plan, videos: Videos, n: int, rate: int, sample: int
) -> dict[str, Any]:
    """N viewers of `videos`, R posts/s over them for warmup + window; latency (from
    `sample` fully parsed viewers), loss per viewer, CPU.

    With N = 0 no load generator runs: the step measures what the server spends taking
    the posts alone (the efficiency baseline), and passes on the posts' count and rate."""
    async with LoadGenerators(server, videos, n, sample) as gens:
        publisher = Publisher(target_for(server), rate, lanes=64, videos=videos)
        task = asyncio.ensure_future(publisher.run(plan.warmup + plan.window))
        await asyncio.sleep(plan.warmup)
        publisher.measure_since = time.monotonic()
        cpu0, t0 = cpu_now(server, gens.pids()), time.monotonic()
        events0 = sum(
            a["events"] for a in await gens.ask({"cmd": "mark", "since_ns": time.time_ns()})
        )
        result = await task
        cpu1, t1 = cpu_now(server, gens.pids()), time.monotonic()
        events1 = sum(
            a["events"]
            for a in await gens.ask({"cmd": "mark", "since_ns": 1 << 62, "clear": False})
        )
        report: dict[str, Any] = {"cmd": "report", "acknowledged": result.acknowledged_by_video}
        reports = await gens.ask(report)
        for _ in range(30):  # drain: up to 3 s for the last comments to arrive
            if all(r["missing"] == 0 for r in reports):
                break
            await asyncio.sleep(0.1)
            reports = await gens.ask(report)
        ready, connect_s, failed = gens.ready, gens.connect_s, gens.failed
    hist: dict[int, int] = {}
    for report in reports:
        for bucket, count in report["latency_hist"].items():
            hist[int(bucket)] = hist.get(int(bucket), 0) + count
    delivered = events1 - events0
    cpu = cpu_used(cpu0, cpu1)
    point = {
        "n": n,
        "videos": videos.count,
        "connected": ready,
        "not_connected": failed,
        "connect_s": connect_s,
        "rate": rate,
        "posted": result.acknowledged,
        "post_failed": result.failed,
        "post_rate": round(result.acknowledged / result.elapsed_s),
        "window_s": round(t1 - t0, 3),
        "delivered": delivered,
        "delivered_per_s": round(delivered / (t1 - t0)),
        "missing": sum(r["missing"] for r in reports),
        "extra": sum(r["extra"] for r in reports),
        "holes": sum(r["holes"] for r in reports),
        "duplicates": sum(r["duplicates"] for r in reports),
        "reordered": sum(r["reordered"] for r in reports),
        "closed": sum(r["closed"] for r in reports),
        "counter_mismatch": sum(r["counter_mismatch"] for r in reports),
        "p50_ms": round(percentile_of_hist(hist, 0.50), 1),
        "p90_ms": round(percentile_of_hist(hist, 0.90), 1),
        "p99_ms": round(percentile_of_hist(hist, 0.99), 1),
        "max_ms": round(percentile_of_hist(hist, 1.0), 1),
        "samples": sum(hist.values()),
        **cpu,
        "cpu_s_per_million": round(cpu["cpu_s"] / delivered * 1e6, 2) if delivered else None,
        "rss_mb": round(rss_bytes(server.roots()) / 2**20, 1),
    }
    point["pass"] = bool(
        (n == 0 or (point["p99_ms"] < HOT_P99_MS and point["samples"] > 0))
        and ready == n
        and point["missing"] == 0
        and point["extra"] == 0
        and point["holes"] == point["duplicates"] == point["reordered"] == 0
        and point["closed"] == 0
        and point["counter_mismatch"] == 0
        and point["post_failed"] == 0
        and point["post_rate"] >= 0.95 * rate
    )
    return point


async def watch_point(
    server: Server, videos: Videos, n: int, settle: float, cpu_window: float = 0.0
) -> dict[str, Any]:
    """N viewers of `videos` and nobody posting: RSS 1 s after the server started and
    again after the viewers connected, `settle` s and the CPU window later; with a
    `cpu_window`, the server's CPU over it in cores and the events the viewers got."""
    await asyncio.sleep(1.0)
    before = rss_bytes(server.roots())
    async with LoadGenerators(server, videos, n, sample=1) as gens:
        await asyncio.sleep(settle)
        measured: dict[str, Any] = {}
        if cpu_window:
            mark = {"cmd": "mark", "since_ns": 1 << 62, "clear": False}
            cpu0, t0 = cpu_now(server, gens.pids()), time.monotonic()
            events0 = sum(a["events"] for a in await gens.ask(mark))
            await asyncio.sleep(cpu_window)
            cpu = cpu_used(cpu0, cpu_now(server, gens.pids()))
            window = time.monotonic() - t0
            events = sum(a["events"] for a in await gens.ask(mark)) - events0
            measured = {"window_s": round(window, 3), **cpu, "events": events}
            measured["cores"] = round(cpu["cpu_s"] / window, 3)
        after = rss_bytes(server.roots())
        ready, connect_s, failed = gens.ready, gens.connect_s, gens.failed
    return {
        "n": n,
        "videos": videos.count,
        "connected": ready,
        "not_connected": failed,
        "connect_s": connect_s,
        **measured,
        "rss_before_mb": round(before / 2**20, 1),
        "rss_after_mb": round(after / 2**20, 1),
        "bytes_per_conn": round((after - before) / max(1, ready)),
        "pass": ready == n,
    }


async def ingest_point(server: Server, rate: int, plan: Plan, videos: Videos) -> dict[str, Any]:
    target = target_for(server)
    await Publisher(target, 20, lanes=1, videos=videos).run(0.5)  # the store's first write
    publisher = Publisher(target, rate, lanes=max(32, rate // 20), videos=videos)
    task = asyncio.ensure_future(publisher.run(plan.warmup + plan.window))
    await asyncio.sleep(plan.warmup)
    publisher.measure_since = time.monotonic()
    cpu0 = cpu_now(server, [])
    result = await task
    cpu = cpu_used(cpu0, cpu_now(server, []))
    point = {
        "rate": rate,
        "videos": videos.count,
        "posted": result.acknowledged,
        "post_failed": result.failed,
        "post_rate": round(result.acknowledged / result.elapsed_s),
        "p50_ms": round(percentile(result.latencies_ms, 0.5), 1),
        "p99_ms": round(percentile(result.latencies_ms, 0.99), 1),
        "max_ms": round(max(result.latencies_ms, default=float("nan")), 1),
        "cpu_s": cpu["cpu_s"],
        "publisher_cpu_s": cpu["publisher_cpu_s"],
    }
    point["pass"] = bool(
        point["p99_ms"] < INGEST_P99_MS and result.failed == 0 and result.acknowledged == result.due
    )
    return point


async def ingest_step(
    folder: Path,
    rate: int,
    plan: Plan,
    store: str,
    workers: int,
    root: Path = ROOT,
    videos: Videos = ONE_INGEST_VIDEO,
) -> dict[str, Any]:
    """`ingest_point` on a fresh server in `folder` (of the build in `root`), with how
    fast the box was before and after it."""
    before = probe(folder.parent)
    server = LiveComments(folder, workers, store, root)
    try:
        point = await ingest_point(server, rate, plan, videos)
    finally:
        server.close()
    point.update(before_and_after(before, probe(folder.parent)))
    point["config"] = server.config
    return point


def ingest_configs(plan: Plan) -> list[tuple[str, int]]:
    """The ingest scenario's (store, workers): SQLite and MongoDB with the plan's workers,
    and SQLite with one worker per core sharing the port (at least two, so that the
    comments cross the NATS bus), as the issue's engine runs."""
    per_core = max(2, os.cpu_count() or 2)
    configs = [("sqlite", plan.lc_workers), ("sqlite", per_core)]
    if FERRETDB.exists():
        configs.append(("mongodb", plan.lc_workers))
    return list(dict.fromkeys(configs))  # --lc-workers may make two of them the same


def describe(point: dict[str, Any]) -> str:
    keys = [k for k in PROGRESS_KEYS if k in point]
    keys += [
        k
        for k in ("bytes_per_conn", "not_connected", "closed", "post_failed", "counter_mismatch")
        if point.get(k)
    ]
    return " ".join(f"{k}={point[k]}" for k in keys) + (" PASS" if point["pass"] else " FAIL")


async def run_scenarios(plan: Plan, only: set[str], server_root: Path = ROOT) -> dict[str, Any]:
    """The scenarios in `only`, livecomments' server.py from the checkout `server_root`."""
    work = Path(tempfile.mkdtemp(prefix="livecomments-bench-"))
    out: dict[str, Any] = {"plan": plan.__dict__, "baseline": []}
    out |= {scenario: [] for scenario in SCENARIOS}
    counter = 0

    def servers(viewers: int = 0) -> list[tuple[str, Callable[[Path], Server]]]:
        """Each server's name and how to start it in a folder, for up to `viewers`;
        Centrifugo only if it is installed."""
        lc = ("livecomments", lambda f: LiveComments(f, plan.lc_workers, root=server_root))
        # twice the viewers: nginx closes connections it may reuse (one still sending its
        # request) whenever fewer than 1/16 of worker_connections are free
        connections = max(NCHAN_CONNECTIONS, 2 * viewers)
        nchan = ("nchan", lambda f: Nchan(f, connections))
        if not CENTRIFUGO.exists():  # scripts/install-centrifugo builds it
            return [lc, nchan]
        return [lc, nchan, ("centrifugo", Centrifugo)]

    async def step(
        name: str,
        start: Callable[[Path], Server],
        measure: Measure,
        rep: int,
    ) -> dict[str, Any]:
        """`measure` (given a video name prefix no step used before) on a fresh server,
        with how fast the box was before and after it."""
        nonlocal counter
        counter += 1
        before = probe(work)
        server = start(work / f"s{counter}")
        try:
            point = await measure(server, f"v{counter}-")
        finally:
            server.close()
        point.update(before_and_after(before, probe(work)))
        point.update(server=name, rep=rep + 1, config=server.config)
        return point

    def fan_out(videos: int, zipf_s: float, n: int, rate: int, sample: int) -> Measure:
        return lambda server, prefix: fan_out_point(
            server, plan, Videos(prefix, videos, zipf_s), n, rate, sample
        )

    def watch(videos: int, n: int, settle: float, cpu_window: float = 0.0) -> Measure:
        return lambda server, prefix: watch_point(
            server, Videos(prefix, videos), n, settle, cpu_window
        )

    def hot(n: int) -> Measure:
        return fan_out(1, 0.0, n, plan.hot_rate, sample=10)

    for rep in range(plan.reps):
        order = 1 if rep % 2 == 0 else -1  # alternate which server goes first
        if "hot" in only:
            for name, start in servers()[::order]:
                point = await step(name, start, hot(0), rep)
                out["baseline"].append(point)
                progress(
                    f"efficiency baseline, no viewers, rep {rep + 1} {name}: {describe(point)}"
                )
                for n in plan.hot_steps:
                    point = await step(name, start, hot(n), rep)
                    out["hot"].append(point)
                    progress(f"hot rep {rep + 1} {name}: {describe(point)}")
                    if not point["pass"] and n >= plan.efficiency_n:
                        break
        if "idle" in only:
            for name, start in servers()[::order]:
                point = await step(name, start, watch(1, plan.idle_n, settle=3.0), rep)
                out["idle"].append(point)
                progress(f"idle rep {rep + 1} {name}: {describe(point)}")
        if "ingest" in only:
            await ingest_ladders(plan, work, rep, out["ingest"], ONE_INGEST_VIDEO, server_root)
        if "quiet" in only:
            for videos in plan.quiet_videos:
                quiet = watch(videos, videos, plan.quiet_warmup, plan.quiet_window)
                for name, start in servers(videos)[::order]:
                    point = await step(name, start, quiet, rep)
                    out["quiet"].append(point)
                    progress(f"quiet rep {rep + 1} {name}: {describe(point)}")
        spreads = {
            "spread": (plan.spread_videos, 0.0, plan.spread_videos, plan.spread_rate),
            "zipf": (plan.zipf_videos, plan.zipf_s, plan.zipf_viewers, plan.zipf_rate),
        }
        for scenario, (count, zipf_s, viewers, rate) in spreads.items():
            if scenario not in only:
                continue
            # every viewer of the even spread is parsed (one comment per 10 s each); of the
            # Zipf spread, whose hot videos take 100+ comments/s, a few hundred
            sample = viewers if zipf_s == 0 else 200
            spread = fan_out(count, zipf_s, viewers, rate, sample)
            for name, start in servers(viewers)[::order]:
                point = await step(name, start, spread, rep)
                out[scenario].append(point)
                progress(f"{scenario} rep {rep + 1} {name}: {describe(point)}")
        if "ingest-spread" in only:
            spread_over = Videos("spread-", plan.ingest_spread_videos)
            await ingest_ladders(plan, work, rep, out["ingest-spread"], spread_over, server_root)
    return out


async def ingest_ladders(
    plan: Plan, work: Path, rep: int, points: list[dict[str, Any]], videos: Videos, root: Path
) -> None:
    """Each ingest configuration's rates stepped up to its first failure, posting over
    `videos`; the points are appended to `points`."""
    for store, workers in ingest_configs(plan):
        for rate in plan.ingest_rates:
            folder = Path(tempfile.mkdtemp(prefix=f"ingest-{store}-{workers}-", dir=work))
            point = await ingest_step(folder, rate, plan, store, workers, root, videos)
            point.update(server="livecomments", store=store, workers=workers, rep=rep + 1)
            points.append(point)
            progress(
                f"ingest over {videos.count} video(s) rep {rep + 1} {store} x{workers}: "
                f"{describe(point)}"
            )
            if not point["pass"]:
                break


def main() -> None:
    parser = argparse.ArgumentParser(
        description="livecomments vs nchan and Centrifugo fan-out benchmark"
    )
    parser.add_argument("--quick", action="store_true", help="short smoke run, one repetition")
    parser.add_argument(
        "--only", default=",".join(SCENARIOS), help="comma-separated scenarios, of: %(default)s"
    )
    parser.add_argument("--lc-workers", type=int, default=None, help="livecomments --workers")
    parser.add_argument("--reps", type=int, default=None, help="repetitions (full: 2)")
    parser.add_argument(
        "--server-root",
        type=Path,
        default=ROOT,
        help="the checkout whose server.py runs as livecomments, e.g. a `git worktree` of "
        "the commit to measure (default: this one)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    only = set(args.only.split(","))
    if only - set(SCENARIOS):
        parser.error(f"unknown scenarios: {', '.join(sorted(only - set(SCENARIOS)))}")
    plan = QUICK if args.quick else FULL
    if args.lc_workers is not None:
        plan = replace(plan, lc_workers=args.lc_workers)
    if args.reps is not None:
        plan = replace(plan, reps=args.reps)
    loadgen.raise_file_limit()
    started = time.monotonic()
    import uvloop

    results = uvloop.run(run_scenarios(plan, only, args.server_root.resolve()))
    results["elapsed_s"] = round(time.monotonic() - started)
    results["command"] = " ".join(["python -m bench.run", *sys.argv[1:]])
    results["machine"] = machine()
    results["cores"] = os.cpu_count()
    results["code"] = code_version(args.server_root)
    results["bench_code"] = code_version()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=1))
    from bench import report

    (args.out / "summary.md").write_text(report.summary(results))
    report.plots(results, args.out)
    progress(f"done in {results['elapsed_s']} s; wrote {args.out}/summary.md")
    print(report.summary(results))


def machine() -> str:
    import platform

    cpu = "unknown cpu"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem = Path("/proc/meminfo").read_text().splitlines()[0].split()[1]
    return (
        f"{os.cpu_count()} cores ({cpu}), {int(mem) // 2**20} GiB, "
        f"Linux {platform.release()}, Python {platform.python_version()}"
    )


def code_version(root: Path = ROOT) -> str:
    """The commit of the checkout in `root`, and whether its work tree differed from it."""
    import subprocess

    described = subprocess.run(
        ["git", "describe", "--always", "--dirty"], cwd=root, capture_output=True, text=True
    )
    return described.stdout.strip() or "unknown"


if __name__ == "__main__":
    main()
