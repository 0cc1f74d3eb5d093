"""Per-client limits: a token bucket per client address (for posts, and for history
reads), and a count of open streams and long-polls per client address.

Owns how much one client may do. State is per process (with several workers or
instances a client's allowance is per process it reaches: nginx's hashing by
video keeps that close to one). Memory is bounded: at most `max_clients`
addresses are tracked, the least recently seen forgotten first, which can only
ever make a limit more lenient. Never touches HTTP.

    >>> limiter = RateLimiter(rate=1.0, burst=2)
    >>> limiter.wait_needed("10.0.0.1", now=0.0), limiter.wait_needed("10.0.0.1", now=0.0)
    (0.0, 0.0)
    >>> limiter.wait_needed("10.0.0.1", now=0.0)
    1.0
"""

from collections import OrderedDict, defaultdict

MAX_CLIENTS = 100_000


class RateLimiter:
    """A token bucket per client: `burst` requests at once, then `rate` a second."""

    def __init__(self, rate: float, burst: int, max_clients: int = MAX_CLIENTS) -> None:
        self.rate = rate
        self.burst = burst
        self._max_clients = max_clients
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # tokens, at

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def wait_needed(self, client: str, now: float) -> float:
        """Take a token for `client`: 0.0 if it had one, else the seconds until it will."""
        if not self.enabled:
            return 0.0
        tokens, at = self._buckets.pop(client, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - at) * self.rate)
        if tokens >= 1.0:
            tokens -= 1.0
            wait = 0.0
        else:
            wait = (1.0 - tokens) / self.rate
        self._buckets[client] = (tokens, now)
        if len(self._buckets) > self._max_clients:
            self._buckets.popitem(last=False)
        return wait


class ConnectionCounter:
    """Open streams and long-polls per client, refusing one past `limit` (0: no limit)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._open: defaultdict[str, int] = defaultdict(int)

    def try_open(self, client: str) -> bool:
        if self.limit and self._open[client] >= self.limit:
            return False
        self._open[client] += 1
        return True

    def close(self, client: str) -> None:
        self._open[client] -= 1
        if self._open[client] <= 0:
            del self._open[client]
