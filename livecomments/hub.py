"""This process's watched videos and everything that keeps their channels complete.

Owns one record per watched video (`_Video`: its `Channel`, its one bus
subscription, the task opening it, a pending store fill and its linger timer),
taken for the video's first local viewer or long-poll and torn down in one
place `linger` seconds after the last one leaves. Also: filling holes from the
store, the periodic completeness check of quiet videos and the check after a
bus reconnect (one batched store query per 1,000 videos, whatever their
number: nothing periodic costs a query per video), trimming each ring to its
recent comments, heartbeats, the per-video memory report, and catching a
viewer up from a cursor before it goes live. The bus is only a fast path:
every comment a viewer is sent comes in `seq` order, checked against the
store. Never touches HTTP: it raises the core's `ShuttingDown` and the store's
`StoreUnavailable`, which handlers answer.
"""

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass

from bus import Bus, Subscription
from livecomments import metrics
from livecomments.channel import Channel, Entry, Viewer
from livecomments.comment import Comment, encode_json
from livecomments.errors import ShuttingDown
from store import CommentStore

log = logging.getLogger(__name__)

FILL_PAGE = 500
# A catch-up reads this many comments from the store at a time, and holds them while its
# viewer takes them: at most ~100 KB of 2 KB comments, encoded, where a fill's page of 500
# pinned 1.3-2 MB per stalled viewer.
CATCH_UP_PAGE = 25
CATCH_UP_CHUNK_BYTES = 32 * 1024


@dataclass(frozen=True, slots=True)
class HubTiming:
    """How long things wait, in seconds."""

    linger: float = 5.0
    sync_interval: float = 2.0
    heartbeat_interval: float = 15.0
    hole_delay: float = 0.02
    coalesce: float = 0.0
    ring_retention: float = 30.0  # a ring keeps what was released this long ago at most


class _Video:
    """Everything this process keeps for one watched video, so that one method ends it all."""

    __slots__ = ("channel", "fill", "linger", "opening", "subscription")

    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        self.opening: asyncio.Task[None] | None = None
        self.subscription: Subscription | None = None
        self.fill: asyncio.Task[None] | None = None
        self.linger: asyncio.TimerHandle | None = None


class Hub:
    """The per-process registry of watched videos, fed by the local post path, the bus and
    the store."""

    def __init__(
        self,
        store: CommentStore,
        bus: Bus,
        *,
        ring_size: int = 1024,
        timing: HubTiming = HubTiming(),
    ) -> None:
        self._store = store
        self._bus = bus
        self._ring_size = ring_size
        self._timing = timing
        self._videos: dict[str, _Video] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._timers: list[asyncio.Task[None]] = []
        self._closing = False

    async def start(self) -> None:
        self._bus.on_reconnect(self._check_all)
        self._timers = [
            asyncio.ensure_future(self._every(self._timing.sync_interval, self._sync)),
            asyncio.ensure_future(self._every(self._timing.heartbeat_interval, self._heartbeat)),
        ]

    async def close(self) -> None:
        """End every stream and long-poll, drop subscriptions, finish pending publishes."""
        self._closing = True
        videos = list(self._videos.values())
        running = [task for video in videos for task in (video.opening, video.fill) if task]
        for video in videos:
            video.channel.end()
            self._drop(video)
        for timer in self._timers:
            timer.cancel()
        await asyncio.gather(*self._timers, *running, return_exceptions=True)
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def join(self, video_id: str) -> Channel:
        """The started channel of `video_id`, counting the caller as interested until `leave`."""
        if self._closing:
            raise ShuttingDown()
        video = self._videos.get(video_id)
        if video is None:
            video = _Video(Channel(video_id, self._ring_size, self._on_hole, self._timing.coalesce))
            self._videos[video_id] = video
            video.opening = asyncio.ensure_future(self._open(video))
        channel = video.channel
        channel.interest += 1
        if video.linger is not None:
            video.linger.cancel()
            video.linger = None
        if video.opening is not None:
            opening = video.opening
            try:
                await asyncio.shield(opening)
            except BaseException:
                self.leave(channel)
                if self._closing and opening.cancelled():  # close() stopped the opening
                    raise ShuttingDown() from None
                raise
        return channel

    def leave(self, channel: Channel) -> None:
        channel.interest -= 1
        video = self._current(channel)
        if channel.interest == 0 and video is not None:
            loop = asyncio.get_running_loop()
            video.linger = loop.call_later(self._timing.linger, self._retire, video)

    def committed(self, video_id: str, comments: Sequence[Comment]) -> None:
        """Deliver freshly committed comments locally and publish them to other instances."""
        video = self._videos.get(video_id)
        if video is not None:
            video.channel.offer(comments)
        payload = encode_json([comment.to_dict() for comment in comments])
        self._spawn(self._publish(video_id, payload))

    async def attach(
        self,
        channel: Channel,
        viewer: Viewer,
        cursor: int | None,
        drain: Callable[[], Awaitable[bool]],
    ) -> None:
        """Send `viewer` every comment after `cursor` (None: from now on), then make it live.

        `drain` waits until the viewer's connection has taken what was sent (False:
        the viewer is gone), so a long catch-up goes at the client's pace instead
        of piling up in memory.
        """
        position = (
            channel.flushed_seq if cursor is None else await self.settle_cursor(channel, cursor)
        )
        while channel.flushed_seq < position:  # the client has what the next flush will send
            flushed = channel.next_delivery()
            try:
                await asyncio.wait({flushed}, timeout=1.0)
            finally:
                flushed.cancel()
            if not await drain():
                return
        while position < channel.flushed_seq:
            entries = [
                entry
                for entry in await self.read_after(channel, position, CATCH_UP_PAGE)
                if entry.seq <= channel.flushed_seq
            ]
            for chunk in _chunks(entries, CATCH_UP_CHUNK_BYTES):
                viewer.send(chunk)
                if not await drain():
                    return
            position = entries[-1].seq
        channel.add_viewer(viewer)

    async def settle_cursor(self, channel: Channel, cursor: int) -> int:
        """`cursor`, lowered to the store's newest if the client is ahead of the store,
        once the channel has caught up with it: a client that saw a comment through
        another instance is never sent it again."""
        if cursor <= channel.last_seq:
            return cursor
        cursor = min(cursor, await self._store.last_seq(channel.video_id))
        while channel.last_seq < cursor:
            if not await self._fill(channel):
                return channel.last_seq
        return cursor

    async def read_after(self, channel: Channel, cursor: int, limit: int) -> list[Entry]:
        """Up to `limit` delivered entries above `cursor`, from the ring or else the store."""
        entries = channel.entries_after(cursor, limit)
        if entries is not None:
            return entries
        comments = await self._store.page_after(channel.video_id, cursor, limit)
        channel.offer(comments)
        return [Entry.of(c) for c in comments if c.seq <= channel.last_seq]

    def newest_entries(self, video_id: str, count: int) -> list[Entry] | None:
        """The newest `count` comments of a video this process follows, newest first, from
        its ring: as fresh as the live viewers' (a comment committed elsewhere shows once the
        bus brings it); None when the ring cannot tell (the caller reads the store)."""
        video = self._videos.get(video_id)
        return None if video is None else video.channel.newest_entries(count)

    def _current(self, channel: Channel) -> _Video | None:
        """The record of `channel`, unless the channel was retired (a newer one may be in use)."""
        video = self._videos.get(channel.video_id)
        return video if video is not None and video.channel is channel else None

    async def _open(self, video: _Video) -> None:
        channel = video.channel
        try:
            video.subscription = await self._bus.subscribe(
                channel.video_id, lambda payload: self._on_bus_message(channel, payload)
            )
            channel.start(await self._store.last_seq(channel.video_id))
        except BaseException:
            video.opening = None  # done: `_drop` must not cancel this very task
            self._drop(video)
            raise
        video.opening = None

    def _retire(self, video: _Video) -> None:
        video.linger = None
        if video.channel.interest == 0:
            self._drop(video)

    def _drop(self, video: _Video) -> None:
        """Forget `video`: stop its opening, fill and linger, and drop its subscription."""
        if self._current(video.channel) is video:
            del self._videos[video.channel.video_id]
        for task in (video.opening, video.fill):
            if task is not None:
                task.cancel()
        if video.linger is not None:
            video.linger.cancel()
        if video.subscription is not None:
            self._spawn(video.subscription.unsubscribe())
        video.opening = video.fill = video.linger = video.subscription = None

    def _on_bus_message(self, channel: Channel, payload: bytes) -> None:
        try:
            comments = [Comment.from_dict(item) for item in json.loads(payload)]
        except (ValueError, TypeError):
            log.warning("dropped a malformed bus message for video %s", channel.video_id)
            return
        channel.offer(comments)

    def _on_hole(self, channel: Channel, delay: float | None = None) -> None:
        """Schedule a store read for `channel`, unless one is pending or it was retired."""
        video = self._current(channel)
        if video is None or video.fill is not None:
            return
        wait = self._timing.hole_delay if delay is None else delay
        video.fill = asyncio.ensure_future(self._fill_later(video, wait))

    async def _fill_later(self, video: _Video, delay: float) -> None:
        """Give the bus `delay` to bring a late comment, then read the store."""
        channel = video.channel
        retry_after = None
        try:
            await asyncio.sleep(delay)
            filled = await self._fill(channel)
            metrics.FILLED_FROM_STORE.inc(filled)
            if channel.has_hole:  # seen while this fill read the store: read again
                retry_after = self._timing.hole_delay if filled else self._timing.sync_interval / 4
        except Exception as exc:
            log.warning("could not fill video %s from the store: %s", channel.video_id, exc)
            retry_after = self._timing.sync_interval
        finally:
            video.fill = None
        if retry_after is not None and channel.has_hole:
            self._on_hole(channel, retry_after)

    async def _fill(self, channel: Channel) -> int:
        """Deliver every comment the store has after the channel's `last_seq`; count them."""
        first = channel.last_seq
        while True:
            comments = await self._store.page_after(channel.video_id, channel.last_seq, FILL_PAGE)
            channel.offer(comments)
            if len(comments) < FILL_PAGE:
                return channel.last_seq - first

    async def _check(self, videos: list[_Video]) -> None:
        """Ask the store, in batches, which of `videos` have comments this process has not
        delivered (their bus message was lost, or their writer died before publishing), and
        fill those."""
        known = {video.channel.video_id: video.channel.last_seq for video in videos}
        for video_id, newest in (await self._store.videos_ahead(known)).items():
            video = self._videos.get(video_id)
            if video is not None:
                video.channel.learn_newest(newest)

    def _check_all(self) -> None:
        """After a bus reconnect: anything published while it was down may be lost."""
        videos = [video for video in self._videos.values() if video.channel.started]
        self._spawn(self._check_logged(videos))

    async def _sync(self) -> None:
        """The periodic pass over every watched video, in one loop: trim each ring to
        `ring_retention`, report per-video memory, and check the videos that delivered
        nothing for a sync interval against the store (a busy video finds its holes by
        `seq`)."""
        now = time.monotonic()
        quiet_since = now - self._timing.sync_interval
        forget_before = now - self._timing.ring_retention
        quiet: list[_Video] = []
        ring_bytes = held = 0
        for video in self._videos.values():
            channel = video.channel
            ring = channel.ring
            if ring and ring[0].released < forget_before:
                channel.forget_before(forget_before)
            ring_bytes += channel.ring_bytes
            held += channel.held
            if channel.started and video.fill is None and channel.last_delivery < quiet_since:
                quiet.append(video)
        metrics.VIDEOS_WATCHED.set(len(self._videos))
        metrics.RING_BYTES.set(ring_bytes)
        metrics.HELD_COMMENTS.set(held)
        if quiet:
            await self._check_logged(quiet)

    async def _check_logged(self, videos: list[_Video]) -> None:
        try:
            await self._check(videos)
        except Exception as exc:  # the next check tries again
            log.warning("could not check %d videos against the store: %s", len(videos), exc)

    async def _heartbeat(self) -> None:
        for video in list(self._videos.values()):
            video.channel.heartbeat()

    async def _publish(self, video_id: str, payload: bytes) -> None:
        try:
            await self._bus.publish(video_id, payload)
        except Exception as exc:
            metrics.BUS_ERRORS.inc()
            log.warning(
                "publish for video %s failed; other instances will read the store: %s",
                video_id,
                exc,
            )

    @staticmethod
    async def _every(interval: float, action: Callable[[], Awaitable[None]]) -> None:
        """Run `action` every `interval` seconds; a pass that fails is logged, not the end."""
        while True:
            await asyncio.sleep(interval)
            try:
                await action()
            except Exception:
                log.exception("a periodic pass of the hub failed; the next one runs as usual")

    def _spawn(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _chunks(entries: Sequence[Entry], size: int) -> Iterator[bytes]:
    """The entries' frames joined into writes of about `size` bytes each, one at a time:
    a viewer that waits to take a chunk holds only that one."""
    pending: list[bytes] = []
    pending_bytes = 0
    for entry in entries:
        pending.append(entry.frame)
        pending_bytes += len(entry.frame)
        if pending_bytes >= size:
            yield b"".join(pending)
            pending, pending_bytes = [], 0
    if pending:
        yield b"".join(pending)
