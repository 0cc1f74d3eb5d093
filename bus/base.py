"""The `Bus` protocol: the fast path that carries committed comments between instances.

Guarantees, and the lack of them, that callers must plan for:

- At most once: a published message may be lost, duplicated or reordered.
  The store is the record; receivers detect holes by `seq` and fill them from
  the store, so nothing relies on the bus for correctness.
- One subscription per video per process: the `Hub` subscribes for a video's
  first local viewer and unsubscribes after its last one leaves.
- Handlers are called on the event loop and must not block.

A bus knows nothing of HTTP, stores or viewers; payloads are opaque bytes.
"""

from collections.abc import Callable
from typing import Protocol

MessageHandler = Callable[[bytes], None]
ReconnectHandler = Callable[[], None]


class BusUnavailable(Exception):
    """The bus cannot be reached."""


class Subscription(Protocol):
    async def unsubscribe(self) -> None: ...


class Bus(Protocol):
    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """Return if the bus answers; raise `BusUnavailable` otherwise."""

    async def publish(self, video_id: str, payload: bytes) -> None:
        """Send `payload` to the subscribers of `video_id` (at most once)."""

    async def subscribe(self, video_id: str, handler: MessageHandler) -> Subscription:
        """Call `handler(payload)` for each message published for `video_id`.

        The subscription is in force when this returns: what is published after
        that reaches `handler` (unless the bus loses it).
        """

    def on_reconnect(self, handler: ReconnectHandler) -> None:
        """Call `handler()` after the bus reconnects, when messages may have been lost."""
