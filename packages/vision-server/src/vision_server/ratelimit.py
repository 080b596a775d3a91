"""Per-client rate limit: a token bucket per client address (429 with Retry-After).

`rate` requests per second on average with bursts of up to `burst` (default: one second's
worth, at least 1). Buckets idle for a minute are forgotten, and at most `max_clients` are
kept (the longest idle go first), so a flood of addresses cannot grow memory.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict

__all__ = ["RateLimiter"]


class RateLimiter:
    """Token buckets by client key. Used from the event loop only (no lock)."""

    def __init__(
        self, rate: float, *, burst: float | None = None, max_clients: int = 10_000
    ) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be > 0, got {rate}")
        self.rate = rate
        self.burst = burst if burst is not None else max(1.0, rate)
        self.max_clients = max_clients
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # tokens, at

    def acquire(self, key: str, now: float | None = None) -> float:
        """0.0 when the request may go, else the seconds until it could."""
        now = time.monotonic() if now is None else now
        tokens, at = self._buckets.pop(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.rate)
        wait = 0.0
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            wait = (1.0 - tokens) / self.rate
        self._buckets[key] = (tokens, now)  # most recently used last
        self._evict(now)
        return wait

    def retry_after(self, wait: float) -> int:
        return max(1, math.ceil(wait))

    def _evict(self, now: float) -> None:
        while self._buckets:
            key, (_, at) = next(iter(self._buckets.items()))
            if len(self._buckets) > self.max_clients or now - at > 60.0:
                del self._buckets[key]
            else:
                break

    def __len__(self) -> int:
        return len(self._buckets)
