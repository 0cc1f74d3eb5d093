"""Buses, picked by URL.

    bus = open_bus("memory://")

`memory://` is the in-process default; `nats://host:port[,host:port...]` reaches
other instances through NATS. Implementations are imported only when
chosen, so an optional client library is needed only where it is used.
"""

from urllib.parse import urlsplit

from bus.base import Bus, BusUnavailable, Subscription

__all__ = ["Bus", "BusUnavailable", "Subscription", "open_bus"]


def open_bus(url: str) -> Bus:
    """The bus for `url`; raises ValueError for a URL no bus understands."""
    scheme = urlsplit(url).scheme
    if scheme == "memory":
        from bus.memory import MemoryBus

        return MemoryBus()
    if scheme in ("nats", "tls"):
        from bus.nats import NatsBus

        return NatsBus.from_url(url)
    raise ValueError(f"unsupported bus URL {url!r}: expected memory:// or nats://host:port")
