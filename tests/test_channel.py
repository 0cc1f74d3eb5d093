"""Unit tests of `Channel`, the pure ordering and fan-out logic (no I/O)."""

import asyncio
import time

from livecomments.channel import FLUSH_COST_RATIO, MAX_COALESCE, Channel
from livecomments.comment import Comment


def comment(seq: int) -> Comment:
    return Comment("v", seq, "ann", f"m{seq}", "2026-01-01T00:00:00.000Z")


class RecordingViewer:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.ended = False

    def send(self, data: bytes) -> None:
        self.writes.append(data)

    def end(self) -> None:
        self.ended = True

    def seqs(self) -> list[int]:
        return [
            int(line[4:])
            for w in self.writes
            for line in w.decode().splitlines()
            if line.startswith("id: ")
        ]


def started_channel(
    last_seq: int = 0, ring_size: int = 8
) -> tuple[Channel, list[Channel], RecordingViewer]:
    holes: list[Channel] = []
    channel = Channel("v", ring_size, holes.append)
    channel.start(last_seq)
    viewer = RecordingViewer()
    channel.add_viewer(viewer)
    return channel, holes, viewer


def test_in_order_batch_is_one_write_per_viewer():
    channel, holes, viewer = started_channel()
    channel.offer([comment(1), comment(2), comment(3)])
    assert len(viewer.writes) == 1
    assert viewer.seqs() == [1, 2, 3]
    assert channel.last_seq == 3
    assert holes == []


def test_duplicates_and_old_comments_are_dropped():
    channel, _, viewer = started_channel()
    channel.offer([comment(1), comment(2)])
    channel.offer([comment(2), comment(1)])
    channel.offer([comment(2), comment(3)])
    assert viewer.seqs() == [1, 2, 3]


def test_out_of_order_is_held_until_the_hole_fills():
    channel, holes, viewer = started_channel()
    channel.offer([comment(2), comment(3)])
    assert viewer.seqs() == []
    assert holes == [channel]
    channel.offer([comment(1)])
    assert viewer.seqs() == [1, 2, 3]


def test_comments_before_start_are_held_and_old_ones_dropped():
    holes: list[Channel] = []
    channel = Channel("v", 8, holes.append)
    channel.offer([comment(5), comment(6)])
    viewer = RecordingViewer()
    channel.add_viewer(viewer)
    channel.start(5)
    assert viewer.seqs() == [6]
    assert holes == []


def test_holding_is_bounded_and_overflow_still_reports_a_hole():
    channel, holes, viewer = started_channel(ring_size=4)
    channel.offer([comment(seq) for seq in range(2, 20)])
    assert viewer.seqs() == []
    holes.clear()
    channel.offer([comment(1)])  # releases 1..4; 5 and above were not held
    assert viewer.seqs() == [1, 2, 3, 4]
    assert holes == [channel], "comments that did not fit must be fetched from the store"


def test_ring_serves_recent_entries_and_says_when_it_cannot():
    channel, _, _ = started_channel(ring_size=4)
    for seq in range(1, 11):
        channel.offer([comment(seq)])
    assert [e.seq for e in channel.entries_after(6, 10) or []] == [7, 8, 9, 10]
    assert [e.seq for e in channel.entries_after(7, 2) or []] == [8, 9]
    assert channel.entries_after(10, 10) == []
    assert channel.entries_after(5, 10) is None


def test_a_comment_is_encoded_once_for_all_viewers():
    channel, _, first = started_channel()
    second = RecordingViewer()
    channel.add_viewer(second)
    channel.offer([comment(1)])
    assert first.writes[0] is second.writes[0]


async def test_waiters_wake_on_delivery_and_on_end():
    channel, _, viewer = started_channel()
    waiter = channel.next_delivery()
    channel.offer([comment(2)])  # held: not a delivery
    await asyncio.sleep(0)
    assert not waiter.done()
    channel.offer([comment(1)])
    assert waiter.done()
    last = channel.next_delivery()
    channel.end()
    assert last.done()
    assert viewer.ended


async def test_a_busy_video_is_coalesced_into_one_write_per_window():
    channel = Channel("v", 64, lambda _: None, coalesce=0.05)
    channel.start(0)
    viewer = RecordingViewer()
    channel.add_viewer(viewer)
    channel.offer([comment(1)])
    await asyncio.sleep(0.001)
    assert viewer.seqs() == [1]  # a quiet video: at once
    for seq in range(2, 6):
        channel.offer([comment(seq)])
        await asyncio.sleep(0.002)
    assert viewer.seqs() == [1]  # busy: held for the rest of the window
    assert channel.flushed_seq == 1
    assert channel.last_seq == 5
    await asyncio.sleep(0.06)
    assert viewer.seqs() == [1, 2, 3, 4, 5]
    assert len(viewer.writes) == 2
    assert channel.flushed_seq == 5


class SlowViewer(RecordingViewer):
    """A viewer whose every write takes `seconds` of CPU time."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds

    def send(self, data: bytes) -> None:
        until = time.thread_time() + self.seconds
        while time.thread_time() < until:
            pass
        super().send(data)


async def test_a_costly_flush_widens_the_window_up_to_its_ceiling():
    channel = Channel("v", 64, lambda _: None, coalesce=0.01)
    channel.start(0)
    viewer = SlowViewer(0.008)
    channel.add_viewer(viewer)
    channel.offer([comment(1)])
    await asyncio.sleep(0.001)
    assert viewer.seqs() == [1]
    assert FLUSH_COST_RATIO * 0.008 <= channel.window <= MAX_COALESCE
    channel.offer([comment(2)])
    await asyncio.sleep(0.015)  # past the configured window, within the widened one
    assert viewer.seqs() == [1]
    await asyncio.sleep(MAX_COALESCE)
    assert viewer.seqs() == [1, 2]


async def test_a_cheap_flush_keeps_the_configured_window():
    channel = Channel("v", 64, lambda _: None, coalesce=0.05)
    channel.start(0)
    channel.add_viewer(RecordingViewer())
    channel.offer([comment(1)])
    await asyncio.sleep(0.001)
    assert channel.window == 0.05
