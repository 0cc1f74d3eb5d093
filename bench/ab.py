"""A change against its base, side by side: one ingest configuration, two builds.

    python -m bench.ab b47b5b1                      # SQLite, 2 workers + NATS
    python -m bench.ab b47b5b1 --store mongodb --workers 1 --rates 2000,3000,4000

Owns the before/after comparison of a change to the post path. The base commit
is exported with `git archive` into a temporary folder; then, for every rate
and repetition, the same `bench.run.ingest_point` runs on the base build and on
this checkout's working tree, one right after the other, alternating which goes
first. Both builds thus see the same minutes of a box whose speed drifts (see
bench.box), which separate runs of `bench.run` cannot promise. Each build runs
with this checkout's Python environment. The table goes to stdout and to
bench/results/ab-<base>.md.
"""

import argparse
import statistics
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import uvloop

from bench import loadgen
from bench.run import FULL, RESULTS, code_version, describe, ingest_step, progress
from bench.servers import ROOT


async def compare(
    base_root: Path, store: str, workers: int, rates: list[int], reps: int
) -> list[dict[str, Any]]:
    work = Path(tempfile.mkdtemp(prefix="livecomments-ab-"))
    builds = {"base": base_root, "this": ROOT}
    points: list[dict[str, Any]] = []
    for rep in range(reps):
        for rate in rates:
            order = list(builds.items())
            if (rep + rates.index(rate)) % 2:
                order.reverse()
            for build, root in order:
                folder = work / f"{build}-{rep}-{rate}"
                point = await ingest_step(folder, rate, FULL, store, workers, root)
                point.update(build=build, rep=rep + 1)
                points.append(point)
                progress(f"{build} rep {rep + 1}: {describe(point)}")
    return points


def table(points: list[dict[str, Any]], title: str) -> str:
    lines = [title, ""]
    lines.append(
        "| rate/s | build | passed | p99 ms of each repetition | median server CPU s "
        "| median box CPU ms before |"
    )
    lines.append("| --- | --- | --- | --- | --- | --- |")
    for rate in sorted({p["rate"] for p in points}):
        for build in ("base", "this"):
            mine = [p for p in points if p["rate"] == rate and p["build"] == build]
            passed = sum(p["pass"] for p in mine)
            p99s = ", ".join(str(p["p99_ms"]) for p in mine)
            cpu = statistics.median(p["cpu_s"] for p in mine)
            box = round(statistics.median(p["box_cpu_ms"][0] for p in mine), 2)
            lines.append(
                f"| {rate} | {build} | {passed} of {len(mine)} | {p99s} | {cpu:.2f} | {box} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description="ingest: a change against its base commit")
    parser.add_argument("base", help="the commit to compare against, e.g. HEAD~1")
    parser.add_argument("--store", default="sqlite", choices=["sqlite", "mongodb"])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rates", default="4000,5000,6000,7000")
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    loadgen.raise_file_limit()
    with tempfile.TemporaryDirectory(prefix="livecomments-base-") as base_root:
        archive = subprocess.run(
            ["git", "archive", args.base], cwd=ROOT, capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", base_root], input=archive, check=True)
        rates = [int(rate) for rate in args.rates.split(",")]
        points = uvloop.run(compare(Path(base_root), args.store, args.workers, rates, args.reps))
    title = (
        f"Ingest, {args.store} with {args.workers} worker(s): base `{args.base}` against "
        f"this `{code_version()}` (`python -m bench.ab {args.base}`, p99 < 50 ms to pass)"
    )
    report = table(points, title)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"ab-{args.base}.md").write_text(report)
    print(report)


if __name__ == "__main__":
    main()
