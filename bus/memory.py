"""The in-process bus: one process, no network, nothing to install.

Delivers each published payload to this process's subscribers on the next
event-loop turn. It never loses or reorders messages, but callers must not
count on that (see bus/base.py). It cannot reach other processes, so the server
refuses to run it with more than one worker.
"""

import asyncio
from collections import defaultdict

from bus.base import MessageHandler, ReconnectHandler


class MemoryBus:
    """`Bus` whose subscribers all live in this process."""

    def __init__(self) -> None:
        self._handlers: defaultdict[str, set[MessageHandler]] = defaultdict(set)

    async def open(self) -> None:
        pass

    async def close(self) -> None:
        self._handlers.clear()

    async def ping(self) -> None:
        pass

    async def publish(self, video_id: str, payload: bytes) -> None:
        loop = asyncio.get_running_loop()
        for handler in list(self._handlers.get(video_id, ())):
            loop.call_soon(handler, payload)

    async def subscribe(self, video_id: str, handler: MessageHandler) -> "MemorySubscription":
        self._handlers[video_id].add(handler)
        return MemorySubscription(self, video_id, handler)

    def on_reconnect(self, handler: ReconnectHandler) -> None:
        """Never called: an in-process bus does not disconnect."""

    def _remove(self, video_id: str, handler: MessageHandler) -> None:
        handlers = self._handlers.get(video_id)
        if handlers is not None:
            handlers.discard(handler)
            if not handlers:
                del self._handlers[video_id]


class MemorySubscription:
    def __init__(self, bus: MemoryBus, video_id: str, handler: MessageHandler) -> None:
        self._bus = bus
        self._video_id = video_id
        self._handler = handler

    async def unsubscribe(self) -> None:
        self._bus._remove(self._video_id, self._handler)
