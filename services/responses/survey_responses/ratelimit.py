"""Token buckets kept in this process's memory, keyed by client address or by link.

Behind several replicas each one counts alone, so the effective limit is the replica count times
the configured one. That is enough to stop a script hammering one link or guessing links from one
address; a shared limit (Redis, the ingress) is the tool if that ever stops being enough.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass


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
