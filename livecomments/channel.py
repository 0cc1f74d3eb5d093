"""Per-video fan-out inside one process: ordering, holes, the recent ring, live viewers.

A `Channel` takes a video's committed comments from wherever they come (the
local post path, the bus, the store), in any order and with repeats, and hands
each one exactly once, in `seq` order, to every live viewer and waiting
long-poll of this process. A comment is encoded once (`Entry`) and a batch is
one write per viewer. A comment ahead of the next expected `seq` is held and
the channel reports the hole; it never does I/O itself: the `Hub` fills holes
from the store and feeds the result back through `offer`.

Invariant: a live viewer has been sent exactly the comments up to
`flushed_seq`, so every flush goes to every live viewer whole. Comments
released within a coalescing window go out as one write per viewer. The
window adapts: a quiet video flushes at once, a busy one every `coalesce`
seconds, and a video whose flush itself costs much CPU (many viewers) waits
`FLUSH_COST_RATIO` times that flush's CPU time, up to `MAX_COALESCE`, so
fan-out takes a bounded share of the process's CPU as viewers grow. CPU time,
not wall time: a process preempted mid-flush must not stretch its windows.
"""

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from itertools import islice
from typing import Protocol

from livecomments import metrics, sse
from livecomments.comment import Comment

# A busy video waits at least this many times its last flush's duration before the next.
FLUSH_COST_RATIO = 5.0
# The longest a released comment waits for its flush (the end-to-end budget is 200 ms).
MAX_COALESCE = 0.1


@dataclass(frozen=True, slots=True)
class Entry:
    """One comment encoded once: its JSON and its SSE frame."""

    seq: int
    json: bytes
    frame: bytes
    released: float = 0.0  # monotonic time the channel released it (0: read, never ringed)

    @property
    def size(self) -> int:
        """The bytes it holds (its JSON and its frame), as the ring's memory report counts them."""
        return len(self.json) + len(self.frame)

    @classmethod
    def of(cls, comment: Comment, released: float = 0.0) -> "Entry":
        data = comment.to_json()
        return cls(comment.seq, data, sse.comment_frame(comment.seq, data), released)


class Viewer(Protocol):
    """A live connection that takes bytes; it must never block or raise."""

    def send(self, data: bytes) -> None: ...

    def end(self) -> None:
        """Finish the stream so the client reconnects (used at shutdown)."""


class Channel:
    """One video's comments in this process, delivered in order, once each."""

    __slots__ = (
        "_coalesce",
        "_flush_at",
        "_held",
        "_held_limit",
        "_last_flush",
        "_on_hole",
        "_unflushed",
        "_viewers",
        "_waiters",
        "flushed_seq",
        "highest_seen",
        "interest",
        "last_delivery",
        "last_seq",
        "ring",
        "ring_bytes",
        "started",
        "video_id",
        "window",
    )

    def __init__(
        self,
        video_id: str,
        ring_size: int,
        on_hole: Callable[["Channel"], None],
        coalesce: float = 0.0,
    ) -> None:
        self.video_id = video_id
        self.last_seq = 0
        self.flushed_seq = 0
        self.highest_seen = 0
        self.started = False
        self.interest = 0
        self.last_delivery = -math.inf  # never: the first completeness check includes it
        self.ring: deque[Entry] = deque(maxlen=ring_size)
        self.ring_bytes = 0  # what the ring's entries hold, for the memory report
        self._held_limit = ring_size
        self._held: dict[int, Comment] = {}
        self._viewers: set[Viewer] = set()
        self._waiters: set[asyncio.Future[None]] = set()
        self._on_hole = on_hole
        self._coalesce = coalesce
        self.window = coalesce  # the current coalescing window, in seconds
        self._unflushed: list[tuple[Entry, str]] = []  # with each comment's created_at
        self._flush_at: asyncio.TimerHandle | asyncio.Handle | None = None
        self._last_flush = 0.0

    def start(self, last_seq: int) -> None:
        """Begin delivering after `last_seq`, the store's newest when the channel opened."""
        self.last_seq = self.flushed_seq = last_seq
        self.started = True
        self._held = {seq: c for seq, c in self._held.items() if seq > last_seq}
        self._release()

    def offer(self, comments: Iterable[Comment]) -> None:
        """Take committed comments in any order; deliver what is now contiguous."""
        for comment in comments:
            if comment.seq <= self.last_seq:
                continue
            self.highest_seen = max(self.highest_seen, comment.seq)
            if self._has_room_for(comment.seq):
                self._held[comment.seq] = comment
        if self.started:
            self._release()

    def learn_newest(self, seq: int) -> None:
        """The store has comments up to `seq`: if this channel has not delivered them, fill."""
        self.highest_seen = max(self.highest_seen, seq)
        if self.started and self.has_hole:
            self._on_hole(self)

    @property
    def held(self) -> int:
        """How many comments wait for a hole below them to fill."""
        return len(self._held)

    def entries_after(self, cursor: int, limit: int) -> list[Entry] | None:
        """Delivered entries just above `cursor` from the ring; None if the ring lacks them."""
        if cursor >= self.last_seq:
            return []
        if not self.ring or self.ring[0].seq > cursor + 1:
            return None
        start = cursor + 1 - self.ring[0].seq
        return list(islice(self.ring, start, start + limit))

    def newest_entries(self, count: int) -> list[Entry] | None:
        """The newest `count` delivered entries, newest first, from the ring; None if the ring
        cannot tell them (not started, a hole below a seen comment, or older ones forgotten)."""
        ring = self.ring
        if not self.started or self.has_hole:
            return None
        if len(ring) < count and (ring[0].seq > 1 if ring else self.last_seq > 0):
            return None
        return list(islice(reversed(ring), count))

    def add_viewer(self, viewer: Viewer) -> None:
        """Make `viewer` live; it must already have every comment up to `flushed_seq`."""
        self._viewers.add(viewer)

    def remove_viewer(self, viewer: Viewer) -> None:
        self._viewers.discard(viewer)

    def next_delivery(self) -> "asyncio.Future[None]":
        """A future resolved at the next delivery (or at shutdown)."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.add(waiter)
        waiter.add_done_callback(self._waiters.discard)
        return waiter

    def heartbeat(self) -> None:
        for viewer in list(self._viewers):
            viewer.send(sse.HEARTBEAT)

    def end(self) -> None:
        """Finish every live stream and wake every waiting long-poll."""
        if self._flush_at is not None:
            self._flush_at.cancel()
        for viewer in list(self._viewers):
            viewer.end()
        self._viewers.clear()
        self._wake_waiters()

    def _has_room_for(self, seq: int) -> bool:
        """Hold at most `ring_size` comments, the nearest ones; the hole fill reads the rest."""
        if self.started:
            return seq <= self.last_seq + self._held_limit
        return len(self._held) < self._held_limit

    @property
    def has_hole(self) -> bool:
        """A comment above `last_seq` was seen but cannot be delivered yet."""
        return self.highest_seen > self.last_seq

    def _release(self) -> None:
        released: list[Comment] = []
        while (comment := self._held.pop(self.last_seq + 1, None)) is not None:
            released.append(comment)
            self.last_seq = comment.seq
        if released:
            self.last_delivery = now = time.monotonic()
            entries = [Entry.of(comment, now) for comment in released]
            self._remember(entries)
            self._unflushed += zip(entries, (c.created_at for c in released), strict=True)
            self._schedule_flush()
        if self.has_hole:
            self._on_hole(self)

    def _remember(self, entries: list[Entry]) -> None:
        """Put `entries` in the ring, counting the bytes of those it takes and lets go."""
        ring = self.ring
        for entry in entries:
            if len(ring) == ring.maxlen:
                self.ring_bytes -= ring[0].size
            ring.append(entry)
            self.ring_bytes += entry.size

    def forget_before(self, released: float) -> None:
        """Drop ring entries released before `released` (monotonic): a quiet video keeps
        only its recent comments in memory, and a catch-up from further back reads the store."""
        ring = self.ring
        while ring and ring[0].released < released:
            self.ring_bytes -= ring.popleft().size

    def _schedule_flush(self) -> None:
        """Flush at once if the video was quiet for a window, else when the window ends,
        so a busy video costs each viewer one write per window, not one per comment."""
        if self._flush_at is not None:
            return
        wait = self._last_flush + self.window - time.monotonic()
        if self._coalesce <= 0:
            self._flush()
        elif wait <= 0:
            self._flush_at = asyncio.get_running_loop().call_soon(self._flush)
        else:
            self._flush_at = asyncio.get_running_loop().call_later(wait, self._flush)

    def _flush(self) -> None:
        """Write what was released since the last flush to every live viewer, once."""
        self._flush_at = None
        self._last_flush = time.monotonic()
        unflushed, self._unflushed = self._unflushed, []
        if not unflushed:
            return
        self.flushed_seq = unflushed[-1][0].seq
        data = b"".join(entry.frame for entry, _ in unflushed)
        started = time.thread_time()
        for viewer in list(self._viewers):
            viewer.send(data)
        cost = time.thread_time() - started
        self.window = min(MAX_COALESCE, max(self._coalesce, FLUSH_COST_RATIO * cost))
        self._wake_waiters()
        metrics.record_fan_out([created_at for _, created_at in unflushed], len(self._viewers))

    def _wake_waiters(self) -> None:
        for waiter in list(self._waiters):
            if not waiter.done():
                waiter.set_result(None)
