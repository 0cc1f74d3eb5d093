"""Prometheus metrics, exposed at `GET /metrics`, summed over all worker processes.

Owns the metric names and their meaning, and how they are read out: with
several workers (`PROMETHEUS_MULTIPROC_DIR` set by server.py), every process
writes its values to that folder and any one of them answers for all. Code
elsewhere only increments or sets metrics; it never reads them back to decide.
"""

import os
import time
from collections.abc import Sequence
from datetime import datetime

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

CONNECTIONS_OPEN = Gauge(
    "livecomments_connections_open",
    "Client connections open: HTTP connections, streams, and those being refused",
    multiprocess_mode="livesum",
)
CONNECTIONS_REFUSED = Counter(
    "livecomments_connections_refused",
    "Connections refused: the process held too many (answered 503, or for a stream told to"
    " reconnect later; or closed at once), or their address did (answered 429)",
    ["how"],
)
for _how in ("answered", "closed", "per_address"):
    CONNECTIONS_REFUSED.labels(_how)
STREAMS_OPEN = Gauge("livecomments_streams_open", "SSE streams open", multiprocess_mode="livesum")
POLLS_WAITING = Gauge(
    "livecomments_polls_waiting", "Long-polls waiting for a comment", multiprocess_mode="livesum"
)
VIDEOS_WATCHED = Gauge(
    "livecomments_videos_watched",
    "Videos with a channel in this process (a viewer or long-poll, or lingering after one)",
    multiprocess_mode="livesum",
)
RING_BYTES = Gauge(
    "livecomments_ring_bytes",
    "Bytes of encoded comments the channels' recent-comment rings hold",
    multiprocess_mode="livesum",
)
HELD_COMMENTS = Gauge(
    "livecomments_held_comments",
    "Comments held back until a hole below them is filled",
    multiprocess_mode="livesum",
)
COMMITS = Counter("livecomments_commits", "Store commits of posted comments (any videos each)")
COMMENTS_POSTED = Counter("livecomments_comments_posted", "Comments committed by this process")
VIEWERS_CUT_OFF = Counter(
    "livecomments_viewers_cut_off", "Streams closed because the viewer fell too far behind"
)
FILLED_FROM_STORE = Counter(
    "livecomments_filled_from_store",
    "Comments delivered after a hole or quiet check read the store",
)
COMMENTS_DELIVERED = Counter(
    "livecomments_comments_delivered", "Comments written to live SSE viewers, one per viewer"
)
DELIVERY_LATENCY = Histogram(
    "livecomments_delivery_latency_seconds",
    "From a comment's commit to its fan-out on this instance (clocks of instances may differ)",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 2.5, 5.0, 10.0),
)
HISTORY_PAGES = Counter(
    "livecomments_history_pages",
    "History pages answered, by where they came from: the newest page of a video this process"
    " follows from its ring, others from the store",
    ["source"],
)
for _source in ("ring", "store"):
    HISTORY_PAGES.labels(_source)  # both shown from the start, at 0
BUS_ERRORS = Counter("livecomments_bus_errors", "Failed bus publishes")
STORE_ERRORS = Counter(
    "livecomments_store_errors", "Requests answered 503 because the store failed"
)


def record_fan_out(created_at: Sequence[str], viewers: int) -> None:
    """Count a released batch: its deliveries, and each comment's commit-to-fan-out time."""
    COMMENTS_DELIVERED.inc(len(created_at) * viewers)
    now = time.time()
    for stamp in created_at:
        DELIVERY_LATENCY.observe(max(0.0, now - datetime.fromisoformat(stamp).timestamp()))


def exposition() -> bytes:
    """Every metric in Prometheus text format, of all workers when there are several."""
    if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        return generate_latest(REGISTRY)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return generate_latest(registry)
