"""The Tornado application: routes and the dependencies each handler gets.

Owns the URL map of the HTTP API (v1). Handlers receive what they need through
their route's dict; nothing is global.
"""

from pathlib import Path

from tornado.web import Application

from bus import Bus
from handlers.base import NotFoundHandler
from handlers.comments import CommentsHandler
from handlers.demo import DemoFileHandler
from handlers.health import HealthHandler, MetricsHandler, OpenApiHandler, ReadyHandler
from handlers.poll import LongPollHandler
from handlers.sse_connection import SseConnections
from handlers.stream import StreamHandler
from livecomments import logs
from livecomments.config import Config
from livecomments.hub import Hub
from livecomments.ingest import Ingest
from livecomments.limits import ConnectionCounter, RateLimiter
from livecomments.proxies import TrustedProxies
from store import CommentStore

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
VIDEO = r"/comments/([^/]+)"


def make_app(
    config: Config,
    store: CommentStore,
    bus: Bus,
    hub: Hub,
    ingest: Ingest,
    connections: SseConnections,
    per_client: ConnectionCounter,
) -> Application:
    static = {
        "path": str(STATIC_DIR),
        "default_filename": "index.html",
        "frame_ancestors": config.frame_ancestors,
    }
    comments = {
        "ingest": ingest,
        "store": store,
        "max_body": config.max_body,
        "hub": hub,
        "post_limiter": RateLimiter(config.post_rate, config.post_burst),
        "read_limiter": RateLimiter(config.read_rate, config.read_burst),
        # In one process on the in-process bus, every post goes through this process's hub.
        "rings_see_every_post": config.bus.startswith("memory:"),
    }
    return Application(
        [
            (r"/()", DemoFileHandler, static),
            (r"/static/(.+)", DemoFileHandler, static),
            (r"/healthz", HealthHandler),
            (r"/readyz", ReadyHandler, {"store": store, "bus": bus}),
            (r"/metrics", MetricsHandler),
            (r"/openapi.json", OpenApiHandler),
            (VIDEO, CommentsHandler, comments),
            (
                VIDEO + r"/stream",
                StreamHandler,
                {"hub": hub, "connections": connections, "per_client": per_client},
            ),
            (VIDEO + r"/poll", LongPollHandler, {"hub": hub, "per_client": per_client}),
        ],
        default_handler_class=NotFoundHandler,
        log_function=logs.log_request,
        trusted_proxies=TrustedProxies.parse(config.trust_proxy),
    )
