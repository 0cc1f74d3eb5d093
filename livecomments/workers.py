"""Several worker processes serving one port: one per core.

Owns reserving the port, forking the workers, forwarding SIGTERM and SIGINT to
them, and restarting a worker that dies after it had been running a while (one
that dies at once would only die again, so the whole server stops instead).
Each worker listens on the port with its own `SO_REUSEPORT` socket, so the
kernel spreads connections evenly; one shared socket let the first idle worker
take nearly all of them. Each worker runs the full service; they meet only
through the store and the bus.
"""

import logging
import os
import signal
import socket
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

MIN_UPTIME_FOR_RESTART = 5.0


def reserve_port(host: str, port: int) -> socket.socket:
    """A socket bound to `host:port` (0: a free port) but not listening, so it never takes
    a connection; workers then bind the same port with `SO_REUSEPORT`. Keep it open."""
    family, kind, protocol, _, address = socket.getaddrinfo(
        host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    reservation = socket.socket(family, kind, protocol)
    reservation.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    reservation.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    reservation.bind(address)
    return reservation


def run_workers(count: int, work: Callable[[], int], on_exit: Callable[[int], None]) -> int:
    """Run `work()` in `count` forked processes until they all stop; the exit code.

    `on_exit(pid)` runs in this process after each worker ends.
    """
    started: dict[int, tuple[int, float]] = {}  # pid -> (worker number, start time)
    stopping = False

    def start(number: int) -> None:
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            os._exit(_exit_code_of(work))
        started[pid] = (number, time.monotonic())

    def forward(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for pid in started:
            os.kill(pid, signum)

    for number in range(count):
        start(number)
    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    exit_code = 0
    while started:
        pid, status = os.wait()
        number, since = started.pop(pid)
        on_exit(pid)
        code = os.waitstatus_to_exitcode(status)
        if stopping or code == 0:
            continue
        if time.monotonic() - since >= MIN_UPTIME_FOR_RESTART:
            log.warning("worker %d (pid %d) died with %d; restarting it", number, pid, code)
            start(number)
        else:
            log.error("worker %d (pid %d) failed at start with %d; stopping", number, pid, code)
            exit_code = code
            forward(signal.SIGTERM, None)
    return exit_code


def _exit_code_of(work: Callable[[], int]) -> int:
    try:
        return work()
    except BaseException:
        log.exception("worker crashed")
        return 1
