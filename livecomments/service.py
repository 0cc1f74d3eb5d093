"""One serving process: open store and bus, start the hub, serve HTTP, shut down cleanly.

Owns the order of start-up and of shutdown. On SIGTERM or SIGINT it stops
accepting, refuses new posts and streams, lets posts in flight commit, ends
every stream and long-poll (clients reconnect and resume elsewhere), then closes
the bus and the store.
"""

import asyncio
import logging
import signal
import socket
from collections.abc import Callable

from bus import BusUnavailable, open_bus
from handlers.listener import ConnectionBudget, GuardedHTTPServer
from handlers.sse_connection import SseConnections
from livecomments.app import make_app
from livecomments.config import Config
from livecomments.hub import Hub, HubTiming
from livecomments.ingest import Ingest
from livecomments.limits import ConnectionCounter
from livecomments.proxies import TrustedProxies
from store import StoreUnavailable, open_store

log = logging.getLogger("livecomments")

# Larger bodies are cut off by Tornado itself; up to here the handler answers 413 in JSON.
HARD_BODY_LIMIT = 1024 * 1024
EXIT_CANNOT_START = 2
# How long a stream's client may take to read the stream's end at shutdown before it is dropped.
STREAM_END_GRACE = 2.0


def run(config: Config, sockets: list[socket.socket]) -> int:
    """Serve on `sockets` until told to stop; the process exit code."""
    try:
        with asyncio.Runner(loop_factory=_fastest_loop()) as runner:
            runner.run(serve(config, sockets))
    except (ValueError, StoreUnavailable, BusUnavailable) as exc:
        log.error("cannot start: %s", exc)
        return EXIT_CANNOT_START
    return 0


def _fastest_loop() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop when it is installed (it is a dependency on Linux), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


async def serve(config: Config, sockets: list[socket.socket]) -> None:
    store = open_store(config.store)
    bus = open_bus(config.bus)
    await store.open()
    await bus.open()
    timing = HubTiming(
        linger=config.linger, heartbeat_interval=config.heartbeat, coalesce=config.coalesce
    )
    hub = Hub(store, bus, ring_size=config.ring_size, timing=timing)
    await hub.start()
    ingest = Ingest(store, hub.committed)
    if config.trust_proxy.strip().lower() in ("true", "yes", "1"):
        log.warning(
            "--trust-proxy %s trusts proxies on this host's loopback only; name your proxies' "
            "addresses or CIDRs instead (e.g. --trust-proxy 10.0.0.0/8)",
            config.trust_proxy,
        )
    budget = ConnectionBudget.for_file_limit(config.max_connections)
    per_client = ConnectionCounter(config.max_streams_per_ip)
    connections = SseConnections(
        hub, config.viewer_buffer, config.request_timeout, per_client, budget
    )
    server = GuardedHTTPServer(
        make_app(config, store, bus, hub, ingest, connections, per_client),
        budget=budget,
        per_peer=ConnectionCounter(config.max_streams_per_ip),
        proxies=TrustedProxies.parse(config.trust_proxy),
        max_body_size=max(HARD_BODY_LIMIT, config.max_body),
        max_header_size=config.max_header,
        idle_connection_timeout=config.request_timeout,  # also the limit for a request's head
        body_timeout=config.request_timeout,
    )
    server.add_sockets(sockets)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    host, port = sockets[0].getsockname()[:2]
    loop_kind = type(loop).__module__.partition(".")[0]
    log.info("listening on http://%s:%d/ (%s event loop)", host, port, loop_kind)
    await stopping.wait()
    log.info("shutting down")
    server.stop()
    await ingest.close()
    await hub.close()
    await connections.close(STREAM_END_GRACE)
    await server.close_all_connections()
    await bus.close()
    await store.close()
    log.info("stopped")
