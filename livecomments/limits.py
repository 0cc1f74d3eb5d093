"""Per-client limits: a token bucket per client address (for posts, and for history
reads), and a count of open connections per client address (its streams and
long-polls; or, in handlers/listener.py, every connection a peer holds).

Owns how much one client may do, and what one client is: an IPv4 address, or an
IPv6 /64, the block one home or phone is given, so a client cannot escape its
limits by taking another of its own addresses. State is per process (with several workers or
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

import ipaddress
from collections import OrderedDict, defaultdict
from functools import lru_cache

MAX_CLIENTS = 100_000


@lru_cache(maxsize=4096)
def client_key(address: str) -> str:
    """Whom `address` belongs to for the limits: itself, or its IPv6 /64.

    >>> client_key("203.0.113.9"), client_key("2001:db8:1:2:aaaa::1")
    ('203.0.113.9', '2001:db8:1:2::/64')
    """
    if ":" not in address:
        return address
    try:
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    except ValueError:
        return address


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
        client = client_key(client)
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
    """Open connections per client, refusing one past `limit` (0: no limit)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._open: defaultdict[str, int] = defaultdict(int)

    def try_open(self, client: str) -> bool:
        client = client_key(client)
        if self.limit and self._open[client] >= self.limit:
            return False
        self._open[client] += 1
        return True

    def close(self, client: str) -> None:
        client = client_key(client)
        self._open[client] -= 1
        if self._open[client] <= 0:
            del self._open[client]
