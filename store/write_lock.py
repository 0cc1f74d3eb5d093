"""The turn of SQLite writers across processes: a kernel lock beside the database.

    lock = WriteLock("/var/lib/livecomments.db")
    with lock.held():  # the first time, opens /var/lib/livecomments.db-lock
        ...  # BEGIN IMMEDIATE ... COMMIT

Owns the `<database>-lock` file and the `flock` on it. Why it exists: SQLite's
busy handler retries a taken write lock after sleeps of 1, 2, 5, 10, 15, 20,
25 ... ms, so a writer that finds it taken often sleeps on long after it is
free. With two workers posting 5,000 comments/s into one file that alone put
the p99 of a post past 50 ms (BENCHMARKS.md). `flock` wakes the next waiter the moment the lock is
released, costs nothing while waiting, and the kernel releases it if its holder
dies. SQLite's own lock still guards the file against every other writer; this
one only lines up the writers of this service so they rarely meet at SQLite's.

A `flock` wait has no timeout, so the caller of a write that waited too long
gives up its `WriteTurn` instead: the write will then never start, and the
caller may answer "unavailable" without the risk of it being committed after
all.
"""

import contextlib
import fcntl
import os
import threading
from collections.abc import Iterator
from typing import Literal


class WriteLock:
    """An exclusive lock per database file, shared by every process that opens it.

    Not thread-safe: one writer thread opens, holds and closes it."""

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
        self._state: Literal["waiting", "started", "given up"] = "waiting"

    @property
    def given_up(self) -> bool:
        return self._state == "given up"

    def start(self) -> bool:
        """The writer's thread, holding the lock: may the write go ahead?"""
        with self._mutex:
            if self._state == "waiting":
                self._state = "started"
            return self._state == "started"

    def give_up(self) -> bool:
        """The waiting side, out of patience: True if the write will now never start."""
        with self._mutex:
            if self._state == "waiting":
                self._state = "given up"
            return self._state == "given up"
