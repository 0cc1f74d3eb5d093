"""Start-up configuration: command-line flags, each with an environment variable.

Owns the option names, their defaults and their environment variables
(`--port` is `LIVECOMMENTS_PORT`, `--store` is `LIVECOMMENTS_STORE`, ...).
A flag wins over its variable, which wins over the default.
"""

import argparse
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields

from livecomments import logs
from livecomments.proxies import TrustedProxies


@dataclass(frozen=True, slots=True)
class Config:
    host: str = "127.0.0.1"
    port: int = 8888
    store: str = "sqlite:///livecomments.db"
    bus: str = "memory://"
    workers: int = 1
    heartbeat: float = 15.0
    linger: float = 5.0
    coalesce: float = 0.02
    viewer_buffer: int = 1024 * 1024
    ring_size: int = 1024
    max_body: int = 16 * 1024
    max_header: int = 16 * 1024
    request_timeout: float = 15.0
    post_rate: float = 2.0
    post_burst: int = 30
    max_streams_per_ip: int = 50
    max_connections: int = 0
    read_rate: float = 0.0
    read_burst: int = 60
    trust_proxy: str = ""
    frame_ancestors: str = "'self'"
    log_level: str = "INFO"
    log_format: str = "text"


# CSP sources ('self', 'none', https://site.example, *.example): nothing that could end the
# directive (;) or the header (CR, LF).
FRAME_SOURCES = re.compile(r"[A-Za-z0-9'*:/._\-]+( [A-Za-z0-9'*:/._\-]+)*")
MIN_RING_SIZE = 16
MIN_VIEWER_BUFFER = 64 * 1024  # above one catch-up chunk, or a resuming viewer never gets going

_HELP = {
    "host": "address to listen on",
    "port": "port to listen on (0 picks a free one; the log says which)",
    "store": "comment store URL, e.g. sqlite:///livecomments.db",
    "bus": "bus URL between instances, e.g. memory://",
    "workers": "serving processes sharing the port (one per core; needs a bus such as NATS)",
    "heartbeat": "seconds between SSE heartbeat lines",
    "linger": "seconds a video stays subscribed on the bus after its last local viewer leaves",
    "coalesce": "seconds a busy video gathers comments into one write per viewer (0: none)",
    "viewer_buffer": "unsent bytes after which a slow viewer is cut off",
    "ring_size": "recent comments kept in memory per active video",
    "max_body": "largest accepted POST body in bytes (larger gets 413)",
    "max_header": "largest accepted request head in bytes (larger: the connection is closed)",
    "request_timeout": "seconds a slow client may take to send a request's head, or its"
    " body, or, while its stream catches up, to take more",
    "post_rate": "posts a second per client address, refilled continuously (0: no limit)",
    "post_burst": "posts a client address may make at once before --post-rate applies",
    "max_streams_per_ip": "open SSE streams and long-polls together per client address, and"
    " as many other connections per peer address (0: no limit)",
    "max_connections": "open connections per process; past it new ones get 503 (0: the"
    " process's file limit less a reserve for the store, the bus and the answer itself)",
    "read_rate": "history reads a second per client address (0: no limit)",
    "read_burst": "history reads a client address may make at once before --read-rate applies",
    "trust_proxy": "addresses or CIDRs of proxies (such as nginx) whose X-Forwarded-For and"
    " X-Real-IP name the client, comma-separated, e.g. 127.0.0.1,10.0.0.0/8 (empty: none)",
    "frame_ancestors": "pages that may embed the demo page in a frame: a CSP frame-ancestors"
    " source list, e.g. 'self' https://site.example ('none': no site)",
    "log_level": "DEBUG, INFO, WARNING or ERROR",
    "log_format": "text (for a terminal) or json (one object a line, for a log pipeline)",
}


def parse_config(argv: Sequence[str], environ: Mapping[str, str]) -> Config:
    """Build the `Config` from flags and `LIVECOMMENTS_*` environment variables."""
    parser = argparse.ArgumentParser(prog="server.py", description="Run the livecomments service.")
    for field in fields(Config):
        kind = _parse_bool if field.type is bool else field.type
        env_name = "LIVECOMMENTS_" + field.name.upper()
        parser.add_argument(
            "--" + field.name.replace("_", "-"),
            dest=field.name,
            type=kind,
            default=environ.get(env_name, field.default),  # argparse converts strings
            help=f"{_HELP[field.name]} (env {env_name}, default {field.default})",
        )
    config = Config(**vars(parser.parse_args(argv)))
    if config.post_burst < 1:
        parser.error("--post-burst must be at least 1")
    if config.log_format not in logs.FORMATS:
        parser.error("--log-format must be text or json")
    if config.workers < 1:
        parser.error("--workers must be at least 1")
    if config.ring_size < MIN_RING_SIZE:
        parser.error(f"--ring-size must be at least {MIN_RING_SIZE}")
    if not FRAME_SOURCES.fullmatch(config.frame_ancestors):
        parser.error("--frame-ancestors must be CSP sources separated by spaces")
    try:
        TrustedProxies.parse(config.trust_proxy)
    except ValueError as exc:
        parser.error(f"--trust-proxy: {exc}")
    if config.viewer_buffer < MIN_VIEWER_BUFFER:
        parser.error(f"--viewer-buffer must be at least {MIN_VIEWER_BUFFER} bytes")
    return config


def _parse_bool(value: str) -> bool:
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, not {value!r}")
