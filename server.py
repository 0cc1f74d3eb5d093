"""Run livecomments: configuration -> listening socket -> one or more serving processes.

    python server.py --port 8888 --store sqlite:///livecomments.db --bus memory://
    python server.py --workers 2 --store mongodb://db/livecomments --bus nats://nats:4222

Each flag has an environment variable (`LIVECOMMENTS_PORT`, ...). With
`--workers N` the socket is bound once and shared by N forked processes; they
reach each other only through the bus, so the in-process bus refuses to run
with more than one. SIGTERM or SIGINT shuts every process down gracefully.
"""

import logging
import os
import shutil
import socket
import sys
import tempfile
from collections.abc import Sequence

from tornado.netutil import bind_sockets

from livecomments import logs
from livecomments.config import Config, parse_config

log = logging.getLogger("livecomments")


# Connections the kernel queues for accept (capped by net.core.somaxconn). Tornado's
# default, 128, overflowed when thousands of viewers reconnected at once after a restart:
# the kernel dropped their SYNs and each client waited 1, 3, 7 s to try again, so 19,000
# viewers of 19,000 videos took 40-60 s to connect (BENCHMARKS.md, "Many videos").
LISTEN_BACKLOG = 4096


def main(argv: Sequence[str] | None = None) -> int:
    config = parse_config(sys.argv[1:] if argv is None else argv, os.environ)
    logs.configure(config.log_level, config.log_format)
    if config.workers > 1 and config.bus.startswith("memory:"):
        log.error(
            "the in-process bus (memory://) cannot connect %d worker processes: "
            "use --workers 1, or a bus between processes such as --bus nats://127.0.0.1:4222",
            config.workers,
        )
        return 2
    if config.workers == 1:
        return serve(config, bind_sockets(config.port, config.host, backlog=LISTEN_BACKLOG))
    return serve_with_workers(config)


def serve(config: Config, sockets: list[socket.socket]) -> int:
    # Imported here, not above: prometheus_client reads PROMETHEUS_MULTIPROC_DIR once, at
    # import, and with workers that variable is set only after the configuration is read.
    from livecomments import service

    return service.run(config, sockets)


def serve_with_workers(config: Config) -> int:
    metrics_dir = tempfile.mkdtemp(prefix="livecomments-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    from prometheus_client import multiprocess

    from livecomments.workers import reserve_port, run_workers

    with reserve_port(config.host, config.port) as reservation:
        port = reservation.getsockname()[1]
        try:
            return run_workers(
                config.workers,
                lambda: serve(
                    config,
                    bind_sockets(port, config.host, reuse_port=True, backlog=LISTEN_BACKLOG),
                ),
                multiprocess.mark_process_dead,
            )
        finally:
            shutil.rmtree(metrics_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
