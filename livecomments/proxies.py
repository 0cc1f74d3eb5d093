"""Which address a request comes from, believing forwarded headers only from trusted proxies.

Owns `--trust-proxy`: the proxies (addresses or CIDRs) whose `X-Forwarded-For`
and `X-Real-IP` headers name the client. Any other peer is the client itself,
whatever it sends, so a client talking to an instance directly cannot forge
its address. From a trusted peer, `X-Forwarded-For` is read from the right,
past the addresses of trusted proxies (a chain of them appends one each); the
first other address is the client. Without that header, `X-Real-IP` is used.
Never touches HTTP: it gets the peer and the two header values.

    >>> proxies = TrustedProxies.parse("127.0.0.1,10.0.0.0/8")
    >>> proxies.client("127.0.0.1", forwarded_for="203.0.113.9, 10.1.2.3", real_ip=None)
    '203.0.113.9'
    >>> proxies.client("198.51.100.7", forwarded_for="203.0.113.9", real_ip="203.0.113.9")
    '198.51.100.7'
"""

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# `--trust-proxy true` once trusted any peer; it now means a proxy on this host.
_LOOPBACK = ("127.0.0.0/8", "::1/128")


@dataclass(frozen=True)
class TrustedProxies:
    networks: Sequence[Network] = ()

    @classmethod
    def parse(cls, text: str) -> "TrustedProxies":
        """From `--trust-proxy`: comma-separated addresses or CIDRs; `true` is this host's
        loopback, empty or `false` none. Raises ValueError naming a bad entry."""
        value = text.strip().lower()
        if value in ("", "false", "no", "0"):
            return cls()
        entries = _LOOPBACK if value in ("true", "yes", "1") else value.split(",")
        networks = []
        for entry in entries:
            try:
                networks.append(ipaddress.ip_network(entry.strip(), strict=False))
            except ValueError:
                raise ValueError(f"not an address or CIDR: {entry.strip()!r}") from None
        return cls(tuple(networks))

    def trusts(self, address: str) -> bool:
        ip = _ip(address)
        return ip is not None and any(ip in network for network in self.networks)

    def client(self, peer: str, forwarded_for: str | None, real_ip: str | None) -> str:
        """The client's address of a request from `peer` with these headers."""
        if not self.trusts(peer):
            return peer
        if forwarded_for:
            hops = [hop.strip() for hop in forwarded_for.split(",")]
            for hop in reversed(hops):
                if _ip(hop) is None:
                    return peer  # a mangled header names nobody: count the proxy itself
                if not self.trusts(hop):
                    return hop
            return hops[0]
        if real_ip and _ip(real_ip.strip()) is not None:
            return real_ip.strip()
        return peer


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None
