"""Token buckets kept in this process's memory, keyed by client address or by link.

Behind several replicas each one counts alone, so the effective limit is the replica count times
the configured one. That is enough to stop a script hammering one link or guessing links from one
address; a shared limit (Redis, the ingress) is the tool if that ever stops being enough.
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
MAX_ADDRESS_LENGTH = 64  # a key in memory: a forged header must not make it big


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """`rate_per_minute` requests a minute on average, `burst` at once; 0 per minute disables."""

    def __init__(self, *, rate_per_minute: int, burst: int, max_keys: int = 100_000) -> None:
        self.rate = rate_per_minute / 60.0
        self.burst = float(burst)
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def retry_after(self, key: str, now: float) -> float:
        """0 when the request may go (and is counted), else the seconds to wait."""
        if not self.enabled:
            return 0.0
        bucket = self._buckets.pop(key, None) or _Bucket(tokens=self.burst, updated=now)
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)
        bucket.updated = now
        self._buckets[key] = bucket  # most recently used last: the oldest go first when full
        if len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return 0.0
        return (1 - bucket.tokens) / self.rate


class ClientAddress:
    """Who a request comes from, for the per-address limit, behind trusted proxies only.

    The TCP peer, unless it is a trusted proxy (an ingress): then the right-most entry of
    X-Forwarded-For that is not itself a trusted proxy. Entries left of it were written by the
    client and can be anything; the right-most untrusted one was written by our own proxy.
    An untrusted peer's header is ignored, so nobody picks their own bucket by forging it.
    """

    def __init__(self, trusted: Sequence[Network]) -> None:
        self.trusted = tuple(trusted)

    def is_trusted(self, host: str) -> bool:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self.trusted)

    def __call__(self, peer: str | None, forwarded_for: Iterable[str]) -> str:
        if peer is None:
            return "unknown"
        if not self.is_trusted(peer):
            return peer
        entries = [entry.strip() for header in forwarded_for for entry in header.split(",")]
        for entry in reversed(entries):
            host = _host_of(entry)
            if host and not self.is_trusted(host):
                return host[:MAX_ADDRESS_LENGTH]
        return peer  # only proxies on the way (or no header): the peer is all we know


def _host_of(entry: str) -> str:
    """`1.2.3.4`, `1.2.3.4:5678`, `[2001:db8::1]:443` or `2001:db8::1` without the port."""
    if entry.startswith("["):
        return entry[1 : entry.find("]")] if "]" in entry else entry
    if entry.count(":") == 1:
        return entry.split(":", 1)[0]
    return entry
