"""The NATS bus: committed comments between instances over a NATS server or cluster.

    bus = NatsBus.from_url("nats://127.0.0.1:4222,127.0.0.1:4223")

Owns the NATS connection, the subject of a video (`comments.<video_id>`) and
the per-subscription pending limits. Core NATS is at-most-once, which is all
this bus promises (bus/base.py): a message sent while the connection is down,
or dropped because a subscriber fell behind, is recovered by the receiver from
the store. After every reconnect the `on_reconnect` handlers run so receivers
check the store. `no_echo` is set: the publishing instance has already
delivered its own comments locally. Never touches HTTP, stores or viewers.

Round trips (readiness, confirming a subscription) never let nats-py time out a
flush itself: its timeout cancels the future that its reader later resolves on
the PONG, and that PONG then ends the reader for good (nats-py 2.16). The client
stays "connected", receives nothing until its stale-connection check minutes
later, and even answers flushes without the server. So a flush waits as long as
it takes, shielded; only the caller's wait gives up, and while a PING given up
on is still unanswered the bus reports itself unavailable instead of sending
more (round trips that are not stuck run side by side).
"""

import asyncio
import logging
import re

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription as NatsSubscription
from nats.errors import Error as NatsError

from bus.base import BusUnavailable, MessageHandler, ReconnectHandler

log = logging.getLogger(__name__)

_SAFE_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,200}")
# A subscriber that falls this far behind loses messages (and reads the store) instead of growing.
PENDING_MESSAGES_LIMIT = 65_536
PENDING_BYTES_LIMIT = 16 * 1024 * 1024
PING_SECONDS = 2
# How long an unanswered PING may wait for its PONG; a reconnect forgets it sooner.
UNANSWERED_PING_SECONDS = 3600
STARTUP_ATTEMPTS = 3  # per seed server, a second apart


def subject_for(video_id: str) -> str:
    """The subject of a video; an id that is not a safe subject token is hex-encoded."""
    if _SAFE_TOKEN.fullmatch(video_id):
        return "comments." + video_id
    return "comments-hex." + video_id.encode().hex()


class NatsBus:
    """`Bus` over core NATS: must connect at start, then reconnects forever."""

    def __init__(self, servers: list[str]) -> None:
        self.servers = servers
        self._client = Client()
        self._reconnect_handlers: list[ReconnectHandler] = []
        self._abandoned: asyncio.Future[None] | None = None  # a PING given up on, left to finish

    @classmethod
    def from_url(cls, url: str) -> "NatsBus":
        """`nats://host:port[,host:port...]`: one URL naming every seed server."""
        scheme, _, hosts = url.partition("://")
        servers = [f"{scheme}://{host.strip()}" for host in hosts.split(",") if host.strip()]
        if not servers:
            raise ValueError(f"{url!r} names no NATS server, e.g. nats://127.0.0.1:4222")
        return cls(servers)

    async def open(self) -> None:
        try:
            await self._client.connect(
                servers=self.servers,
                name="livecomments",
                no_echo=True,
                allow_reconnect=True,
                max_reconnect_attempts=STARTUP_ATTEMPTS,
                reconnect_time_wait=1,
                connect_timeout=2,
                error_cb=self._on_error,
                disconnected_cb=self._on_disconnected,
                reconnected_cb=self._on_reconnected,
            )
        except (NatsError, OSError) as exc:
            raise BusUnavailable(f"cannot connect to NATS at {self.servers}: {exc}") from exc
        # Refuse to start without NATS, but once connected, never give up reconnecting.
        self._client.options["max_reconnect_attempts"] = -1

    async def close(self) -> None:
        if not self._client.is_closed:
            await self._client.close()
        if self._abandoned is not None:
            self._abandoned.cancel()  # safe now: the closed client reads no PONG

    async def ping(self) -> None:
        if not self._client.is_connected:
            raise BusUnavailable("not connected to NATS")
        await self._round_trip()

    async def _round_trip(self) -> None:
        """A PING after everything queued so far, and its PONG within `PING_SECONDS`."""
        if self._abandoned is not None and not self._abandoned.done():
            raise BusUnavailable("NATS has not answered an earlier PING")
        flush = asyncio.ensure_future(self._client.flush(timeout=UNANSWERED_PING_SECONDS))
        flush.add_done_callback(_retrieve_outcome)  # also when nobody awaits it
        try:
            await asyncio.wait_for(asyncio.shield(flush), PING_SECONDS)
        except TimeoutError as exc:
            raise BusUnavailable(f"NATS did not answer within {PING_SECONDS} s") from exc
        except NatsError as exc:
            raise BusUnavailable(f"NATS did not answer: {exc!r}") from exc
        finally:
            if not flush.done():  # timed out or cancelled: left to finish, never cancelled
                self._abandoned = flush

    async def publish(self, video_id: str, payload: bytes) -> None:
        try:
            await self._client.publish(subject_for(video_id), payload)
        except NatsError as exc:
            raise BusUnavailable(f"publish failed: {exc}") from exc

    async def subscribe(self, video_id: str, handler: MessageHandler) -> "NatsBusSubscription":
        async def deliver(message: Msg) -> None:
            handler(message.data)

        try:
            subscription = await self._client.subscribe(
                subject_for(video_id),
                cb=deliver,
                pending_msgs_limit=PENDING_MESSAGES_LIMIT,
                pending_bytes_limit=PENDING_BYTES_LIMIT,
            )
        except NatsError as exc:
            raise BusUnavailable(f"subscribe failed: {exc}") from exc
        try:
            await self._wait_until_sent()
        except BusUnavailable as exc:
            # The bus is only the fast path: keep the subscription (the client sends it
            # again on reconnect) and let the hub's store checks cover the video meanwhile.
            log.warning("NATS: subscribed to %s without confirmation: %r", video_id, exc)
        return NatsBusSubscription(subscription)

    async def _wait_until_sent(self) -> None:
        """Return once the server has processed everything sent so far.

        nats-py writes a flush's PING ahead of the commands still queued for its
        flusher (seen on the wire: PING, PONG, then SUB), so one flush proves
        nothing. The first flush gets the queue written; the second one's PONG
        comes after it.
        """
        await self._round_trip()
        await self._round_trip()

    def on_reconnect(self, handler: ReconnectHandler) -> None:
        self._reconnect_handlers.append(handler)

    async def _on_error(self, error: Exception) -> None:
        log.warning("NATS: %s", error)

    async def _on_disconnected(self) -> None:
        log.warning("NATS: disconnected; reconnecting")

    async def _on_reconnected(self) -> None:
        log.info("NATS: reconnected to %s", self._client.connected_url)
        self._abandoned = None  # the new connection will never answer the old PING
        for handler in self._reconnect_handlers:
            handler()


def _retrieve_outcome(flush: "asyncio.Future[None]") -> None:
    if not flush.cancelled():
        flush.exception()


class NatsBusSubscription:
    def __init__(self, subscription: NatsSubscription) -> None:
        self._subscription = subscription

    async def unsubscribe(self) -> None:
        try:
            await self._subscription.unsubscribe()
        except NatsError as exc:  # the connection is closing or gone: nothing left to stop
            log.info("NATS: unsubscribe skipped: %s", exc)
