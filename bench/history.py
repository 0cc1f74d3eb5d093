"""History reads: the server CPU of one request, newest page from a ring against the store.

    python -m bench.history        # about a minute; the table goes to stdout and to
                                   # bench/results/history-<commit>.md

Owns the history measurement. One livecomments server (one worker, SQLite) and
two videos of 1,000 comments each, both still taking ten comments a second: an
active one, with a live viewer, whose newest page comes from its ring, and an
unwatched one, whose newest page the store reads. For each page size and
repetition, `REQUESTS` sequential requests of one video's newest page, then of
the other's (alternating which goes first), with the server's CPU time before
and after: both sources see the same minutes of a noisy box. The client is one
keep-alive connection; its CPU is not counted. The server's own count of pages
by source must agree, or the run fails.
"""

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import httpx
import uvloop
from prometheus_client.parser import text_string_to_metric_families

from bench.run import RESULTS, code_version
from bench.servers import LiveComments, cpu_seconds

REQUESTS = 2000
PAGE_SIZES = (50, 200)
COMMENTS = 1000
ACTIVE, UNWATCHED = "history-active", "history-unwatched"


async def keep_posting(client: httpx.AsyncClient) -> None:
    """Ten comments a second into each video: a ring forgets what it released over 30 s
    ago, and the active one's must keep a page of 200."""
    while True:
        for video in (ACTIVE, UNWATCHED):
            await client.post(f"/comments/{video}", json={"message": "tick"})
        await asyncio.sleep(0.1)


async def keep_watching(client: httpx.AsyncClient) -> None:
    async with client.stream("GET", f"/comments/{ACTIVE}/stream") as stream:
        async for _ in stream.aiter_bytes():
            pass


async def cpu_per_request_us(
    client: httpx.AsyncClient, server: LiveComments, video: str, limit: int, source: str
) -> float:
    for _ in range(50):  # warm-up
        (await client.get(f"/comments/{video}", params={"limit": limit})).raise_for_status()
    pages_before = await pages_from(client, source)
    before = cpu_seconds(server.roots())
    for _ in range(REQUESTS):
        (await client.get(f"/comments/{video}", params={"limit": limit})).raise_for_status()
    cost = (cpu_seconds(server.roots()) - before) / REQUESTS * 1e6
    served = await pages_from(client, source) - pages_before
    if served != REQUESTS:
        raise RuntimeError(f"{served:.0f} of {REQUESTS} pages of {video} came from the {source}")
    return cost


async def pages_from(client: httpx.AsyncClient, source: str) -> float:
    """History pages the server answered from `source` so far."""
    text = (await client.get("/metrics")).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "livecomments_history_pages_total" and sample.labels == {
                "source": source
            }:
                return float(sample.value)
    raise RuntimeError("the server reports no livecomments_history_pages_total")


async def measure(reps: int) -> dict[tuple[int, str], list[float]]:
    folder = Path(tempfile.mkdtemp(prefix="livecomments-history-"))
    server = LiveComments(folder, workers=1)
    results: dict[tuple[int, str], list[float]] = {}
    try:
        async with (
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}", timeout=30) as client,
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}", timeout=None) as side,
        ):
            watching = asyncio.ensure_future(keep_watching(side))
            await asyncio.sleep(0.5)  # the ring takes what comes after its viewer arrived
            for video in (ACTIVE, UNWATCHED):
                for start in range(0, COMMENTS, 100):
                    await asyncio.gather(
                        *(
                            side.post(f"/comments/{video}", json={"message": f"m{n}"})
                            for n in range(start, start + 100)
                        )
                    )
            background = [watching, asyncio.ensure_future(keep_posting(side))]
            for rep in range(reps):
                for limit in PAGE_SIZES:
                    order = [(ACTIVE, "ring"), (UNWATCHED, "store")]
                    if (rep + limit) % 2:
                        order.reverse()
                    for video, source in order:
                        cost = await cpu_per_request_us(client, server, video, limit, source)
                        results.setdefault((limit, source), []).append(cost)
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
    finally:
        server.close()
    return results


def table(results: dict[tuple[int, str], list[float]], reps: int) -> str:
    lines = [
        f"Server CPU per history request, µs ({REQUESTS} sequential requests per repetition,"
        f" {reps} repetitions)",
        "",
        "| page size | newest page from | each repetition | median | store / ring |",
        "| --- | --- | --- | --- | --- |",
    ]
    for limit in PAGE_SIZES:
        ring = statistics.median(results[(limit, "ring")])
        for source in ("ring", "store"):
            costs = results[(limit, source)]
            median = statistics.median(costs)
            ratio = f"{median / ring:.2f}" if source == "store" else ""
            each = ", ".join(f"{cost:.0f}" for cost in costs)
            lines.append(f"| {limit} | {source} | {each} | {median:.0f} | {ratio} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description="server CPU of one history request")
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    started = time.monotonic()
    results = uvloop.run(measure(args.reps))
    code = code_version()
    elapsed = time.monotonic() - started
    report = (
        f"Command: `python -m bench.history --reps {args.reps}`  \n"
        f"Code: {code}  \nElapsed: {elapsed:.0f} s\n\n{table(results, args.reps)}"
    )
    print(report)
    (RESULTS / f"history-{code}.md").write_text(report)


if __name__ == "__main__":
    main()
