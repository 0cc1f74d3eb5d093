"""Run livecomments: configuration -> store, bus, hub -> Tornado app -> serve.

    python server.py --port 8888 --store sqlite:///livecomments.db --bus memory://

Each flag has an environment variable (`LIVECOMMENTS_PORT`, ...). On SIGTERM or
SIGINT the server stops accepting, ends every stream and long-poll (clients
reconnect and resume), waits for posts in flight, then closes bus and store.
"""

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Sequence

from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

from bus import BusUnavailable, open_bus
from livecomments.app import make_app
from livecomments.config import Config, parse_config
from livecomments.hub import Hub, HubTiming
from livecomments.ingest import Ingest
from store import StoreUnavailable, open_store

log = logging.getLogger("livecomments")

# Larger bodies are cut off by Tornado itself; up to here the handler answers 413 in JSON.
HARD_BODY_LIMIT = 1024 * 1024


async def serve(config: Config) -> None:
    store = open_store(config.store)
    bus = open_bus(config.bus)
    await store.open()
    await bus.open()
    hub = Hub(
        store,
        bus,
        ring_size=config.ring_size,
        timing=HubTiming(heartbeat_interval=config.heartbeat),
    )
    await hub.start()
    ingest = Ingest(store, hub.committed)
    app = make_app(config, store, bus, hub, ingest)
    server = HTTPServer(
        app, max_body_size=max(HARD_BODY_LIMIT, config.max_body), idle_connection_timeout=75
    )
    sockets = bind_sockets(config.port, config.host)
    server.add_sockets(sockets)
    port = sockets[0].getsockname()[1]
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    log.info("listening on http://%s:%d/", config.host, port)
    await stopping.wait()
    log.info("shutting down")
    server.stop()
    await ingest.close()
    await hub.close()
    await server.close_all_connections()
    await bus.close()
    await store.close()
    log.info("stopped")


def main(argv: Sequence[str] | None = None) -> None:
    config = parse_config(sys.argv[1:] if argv is None else argv, os.environ)
    logging.basicConfig(
        level=config.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    try:
        asyncio.run(serve(config))
    except (ValueError, StoreUnavailable, BusUnavailable) as exc:
        log.error("cannot start: %s", exc)
        sys.exit(2)


if __name__ == "__main__":
    main()
