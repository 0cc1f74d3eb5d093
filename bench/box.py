"""How fast the box is right now: a fixed CPU-bound loop and a small fsync, timed between steps.

    before = probe(work_dir)  # {"box_cpu_ms": 0.96, "box_fsync_ms": 0.18}
    ...                       # the step
    point.update(before_and_after(before, probe(work_dir)))

The ingest scenario has no peer in its run (nchan keeps nothing durably), and
this 2-core virtual machine slows down now and then with nothing of ours
running: the same code then takes more CPU time per post, and commits may take
longer.
Each step records these two times just before and just after it, so a report
shows whether a step failed on a slower box. Higher is slower; compare within
a run. On the project's machine the CPU probe has been seen to double between
one minute and the next with nothing else running.
"""

import os
import statistics
import time
from pathlib import Path

CPU_ROUNDS = 7
FSYNC_ROUNDS = 9


def probe(directory: Path) -> dict[str, float]:
    return {"box_cpu_ms": cpu_probe_ms(), "box_fsync_ms": fsync_probe_ms(directory)}


def before_and_after(before: dict[str, float], after: dict[str, float]) -> dict[str, list[float]]:
    """Each probe's figure as [before, after]."""
    return {key: [before[key], after[key]] for key in before}


def cpu_probe_ms() -> float:
    """Median CPU time of a fixed pure-Python workload (dict stores and integer
    arithmetic, the kind of work a post costs). CPU time, not wall time: what it
    shows is how much CPU the same work takes, not who else is on the core."""
    times = []
    for _ in range(CPU_ROUNDS):
        started = time.thread_time()
        _workload()
        times.append(time.thread_time() - started)
    return round(statistics.median(times) * 1000, 2)


def fsync_probe_ms(directory: Path) -> float:
    """Median time to append 4 KiB to a file in `directory` and fsync it."""
    path = directory / "fsync-probe"
    times = []
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for _ in range(FSYNC_ROUNDS):
            started = time.perf_counter()
            os.write(fd, b"\0" * 4096)
            os.fsync(fd)
            times.append(time.perf_counter() - started)
    finally:
        os.close(fd)
        path.unlink()
    return round(statistics.median(times) * 1000, 2)


def _workload() -> int:
    table: dict[int, int] = {}
    total = 0
    for i in range(20_000):
        table[i & 255] = total
        total += i * 7 % 13
    return total + len(table)
