"""This process's channels and everything that keeps them complete.

Owns the map of video id to `Channel`, the one bus subscription per video
(taken for the first local viewer or long-poll, dropped `linger` seconds after
the last one leaves), filling holes from the store, the periodic store check
for quiet videos and after a bus reconnect, heartbeats, and catching a viewer
up from a cursor before it goes live. The bus is only a fast path: every
comment a viewer is sent comes in `seq` order, checked against the store.
Never touches HTTP.
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
from livecomments.errors import ApiError
from store import CommentStore

log = logging.getLogger(__name__)

FILL_PAGE = 500
CATCH_UP_CHUNK_BYTES = 32 * 1024


@dataclass(frozen=True, slots=True)
class HubTiming:
    """How long things wait, in seconds."""

    linger: float = 5.0
    sync_interval: float = 2.0
    heartbeat_interval: float = 15.0
    hole_delay: float = 0.02
    coalesce: float = 0.0


class Hub:
    """The per-process registry of channels, fed by the local post path, the bus and the store."""

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
        self._channels: dict[str, Channel] = {}
        self._opening: dict[Channel, asyncio.Task[None]] = {}
        self._subscriptions: dict[Channel, Subscription] = {}
        self._fills: dict[Channel, asyncio.Task[None]] = {}
        self._lingering: dict[Channel, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._timers: list[asyncio.Task[None]] = []
        self._closing = False

    async def start(self) -> None:
        self._bus.on_reconnect(self._check_all)
        self._timers = [
            asyncio.ensure_future(self._every(self._timing.sync_interval, self._check_quiet)),
            asyncio.ensure_future(self._every(self._timing.heartbeat_interval, self._heartbeat)),
        ]

    async def close(self) -> None:
        """End every stream and long-poll, drop subscriptions, finish pending publishes."""
        self._closing = True
        for opening in self._opening.values():
            opening.cancel()
        for handle in self._lingering.values():
            handle.cancel()
        self._lingering.clear()
        for channel in list(self._channels.values()):
            channel.end()
        stopping = self._timers + list(self._fills.values())
        for task in stopping:
            task.cancel()
        await asyncio.gather(*stopping, *self._opening.values(), return_exceptions=True)
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for subscription in self._subscriptions.values():
            await subscription.unsubscribe()
        self._subscriptions.clear()
        self._channels.clear()

    async def join(self, video_id: str) -> Channel:
        """The started channel of `video_id`, counting the caller as interested until `leave`."""
        if self._closing:
            raise ApiError(503, "shutting_down", "the server is stopping; reconnect")
        channel = self._channels.get(video_id)
        if channel is None:
            channel = Channel(video_id, self._ring_size, self._on_hole, self._timing.coalesce)
            self._channels[video_id] = channel
            self._opening[channel] = asyncio.ensure_future(self._open(channel))
        channel.interest += 1
        linger = self._lingering.pop(channel, None)
        if linger is not None:
            linger.cancel()
        opening = self._opening.get(channel)
        if opening is not None:
            try:
                await asyncio.shield(opening)
            except BaseException:
                self.leave(channel)
                raise
        return channel

    def leave(self, channel: Channel) -> None:
        channel.interest -= 1
        if channel.interest == 0 and self._channels.get(channel.video_id) is channel:
            loop = asyncio.get_running_loop()
            self._lingering[channel] = loop.call_later(self._timing.linger, self._retire, channel)

    def committed(self, video_id: str, comments: Sequence[Comment]) -> None:
        """Deliver freshly committed comments locally and publish them to other instances."""
        channel = self._channels.get(video_id)
        if channel is not None:
            channel.offer(comments)
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
                for entry in await self.read_after(channel, position, FILL_PAGE)
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

    async def _open(self, channel: Channel) -> None:
        video_id = channel.video_id
        try:
            subscription = await self._bus.subscribe(
                video_id, lambda payload: self._on_bus_message(channel, payload)
            )
            self._subscriptions[channel] = subscription
            channel.start(await self._store.last_seq(video_id))
        except BaseException:
            if self._channels.get(video_id) is channel:
                del self._channels[video_id]
            subscription_left = self._subscriptions.pop(channel, None)
            if subscription_left is not None:
                await subscription_left.unsubscribe()
            raise
        finally:
            self._opening.pop(channel, None)

    def _retire(self, channel: Channel) -> None:
        self._lingering.pop(channel, None)
        if channel.interest > 0 or self._channels.get(channel.video_id) is not channel:
            return
        del self._channels[channel.video_id]
        subscription = self._subscriptions.pop(channel, None)
        if subscription is not None:
            self._spawn(subscription.unsubscribe())

    def _on_bus_message(self, channel: Channel, payload: bytes) -> None:
        try:
            comments = [Comment.from_dict(item) for item in json.loads(payload)]
        except (ValueError, TypeError):
            log.warning("dropped a malformed bus message for video %s", channel.video_id)
            return
        channel.offer(comments)

    def _on_hole(self, channel: Channel, delay: float | None = None) -> None:
        """Schedule a store read for `channel`, unless one is pending or it was retired."""
        if channel in self._fills or self._channels.get(channel.video_id) is not channel:
            return
        wait = self._timing.hole_delay if delay is None else delay
        self._fills[channel] = asyncio.ensure_future(self._fill_later(channel, wait))

    async def _fill_later(self, channel: Channel, delay: float) -> None:
        """Give the bus `delay` to bring a late comment, then read the store."""
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
            self._fills.pop(channel, None)
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

    def _check_all(self) -> None:
        for channel in list(self._channels.values()):
            if channel.started:
                self._on_hole(channel)

    def _check_quiet(self) -> None:
        quiet_since = time.monotonic() - self._timing.sync_interval
        for channel in list(self._channels.values()):
            if channel.started and channel.last_delivery < quiet_since:
                self._on_hole(channel)

    def _heartbeat(self) -> None:
        for channel in list(self._channels.values()):
            channel.heartbeat()

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
    async def _every(interval: float, action: Callable[[], None]) -> None:
        while True:
            await asyncio.sleep(interval)
            action()

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
