"""`GET /healthz` (the process is up), `GET /readyz` (store and bus answer), `GET /metrics`,
and `GET /openapi.json`.

Readiness asks the store and the bus each with a short deadline, so a load
balancer stops sending traffic to an instance that could not commit or fan out.
"""

import asyncio
from collections.abc import Awaitable

from prometheus_client import CONTENT_TYPE_LATEST

from bus import Bus
from handlers.base import ApiHandler
from livecomments import metrics, openapi
from livecomments.comment import encode_json
from store import CommentStore

READY_DEADLINE_SECONDS = 2.0


class HealthHandler(ApiHandler):
    def get(self) -> None:
        self.send_json(200, b'{"status":"ok"}')


class ReadyHandler(ApiHandler):
    def initialize(self, store: CommentStore, bus: Bus) -> None:
        self._store = store
        self._bus = bus

    async def get(self) -> None:
        checks = {"store": await _check(self._store.ping()), "bus": await _check(self._bus.ping())}
        ready = all(result == "ok" for result in checks.values())
        self.send_json(200 if ready else 503, encode_json({"ready": ready, "checks": checks}))


async def _check(probe: Awaitable[None]) -> str:
    try:
        await asyncio.wait_for(probe, READY_DEADLINE_SECONDS)
    except Exception as exc:
        return f"unavailable: {type(exc).__name__}"
    return "ok"


class MetricsHandler(ApiHandler):
    def get(self) -> None:
        self.set_header("Content-Type", CONTENT_TYPE_LATEST)
        self.finish(metrics.exposition())


class OpenApiHandler(ApiHandler):
    """`GET /openapi.json`: the API description (livecomments/openapi.py)."""

    def get(self) -> None:
        self.send_json(200, openapi.document())
