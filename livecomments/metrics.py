"""Prometheus metrics, exposed at `GET /metrics`, summed over all worker processes.

Owns the metric names and their meaning, and how they are read out: with
several workers (`PROMETHEUS_MULTIPROC_DIR` set by server.py), every process
writes its values to that folder and any one of them answers for all. Code
elsewhere only increments or sets metrics; it never reads them back to decide.
"""

import os

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    generate_latest,
    multiprocess,
)

STREAMS_OPEN = Gauge("livecomments_streams_open", "SSE streams open", multiprocess_mode="livesum")
POLLS_WAITING = Gauge(
    "livecomments_polls_waiting", "Long-polls waiting for a comment", multiprocess_mode="livesum"
)
COMMENTS_POSTED = Counter("livecomments_comments_posted", "Comments committed by this process")
VIEWERS_CUT_OFF = Counter(
    "livecomments_viewers_cut_off", "Streams closed because the viewer fell too far behind"
)
FILLED_FROM_STORE = Counter(
    "livecomments_filled_from_store",
    "Comments delivered after a hole or quiet check read the store",
)
BUS_ERRORS = Counter("livecomments_bus_errors", "Failed bus publishes")
STORE_ERRORS = Counter(
    "livecomments_store_errors", "Requests answered 503 because the store failed"
)


def exposition() -> bytes:
    """Every metric in Prometheus text format, of all workers when there are several."""
    if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        return generate_latest(REGISTRY)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return generate_latest(registry)
