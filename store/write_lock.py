"""The turn of SQLite writers across processes: a kernel lock beside the database.

    lock = WriteLock("/var/lib/livecomments.db")  # opens /var/lib/livecomments.db-lock
    with lock.held():
        ...  # BEGIN IMMEDIATE ... COMMIT

Owns the `<database>-lock` file and the `flock` on it. Why it exists: SQLite's
busy handler retries a taken write lock after sleeps of 1, 2, 5, 10, 15, 20,
25 ... ms, so a writer that finds it taken often sleeps on long after it is
free. With two workers posting into one file that alone put the p99 of a post
at 50 ms (BENCHMARKS.md). `flock` wakes the next waiter the moment the lock is
released, costs nothing while waiting, and the kernel releases it if its holder
dies. SQLite's own lock still guards the file against every other writer; this
one only lines up the writers of this service so they rarely meet at SQLite's.

A `flock` wait has no timeout, so a writer that waited too long gives up its
`WriteTurn` instead: it will then never start, and its caller may answer
"unavailable" without the risk of the write being committed after all.
"""

import contextlib
import fcntl
import os
import threading
from collections.abc import Iterator


class WriteLock:
    """An exclusive lock per database file, shared by every process that opens it."""

    def __init__(self, database_path: str) -> None:
        self.path = database_path + "-lock"
        self._fd: int | None = None

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """Block until this process's writer has the lock; release it on leaving."""
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class WriteTurn:
    """One write's claim: it either starts or is given up, never both."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._started = False
        self._given_up = False

    def start(self) -> bool:
        """The writer's thread, holding the lock: may the write go ahead?"""
        with self._mutex:
            self._started = not self._given_up
            return self._started

    def give_up(self) -> bool:
        """The waiting side, out of patience: True if the write will now never start."""
        with self._mutex:
            self._given_up = not self._started
            return self._given_up
