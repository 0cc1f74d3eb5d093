"""Prometheus metrics of one process, exposed at `GET /metrics`.

Owns the metric names and their meaning. Code elsewhere only increments or
sets them; it never reads them back to make decisions.
"""

from prometheus_client import Counter, Gauge

STREAMS_OPEN = Gauge("livecomments_streams_open", "SSE streams open")
POLLS_WAITING = Gauge("livecomments_polls_waiting", "Long-polls waiting for a comment")
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
