"""A thread-safe token bucket: at most `rate` acquisitions per second, bursts of `burst`."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class TokenBucket:
    """`acquire()` blocks until a token is free. Shared by every worker thread.

    With burst 1 (the default) n acquisitions take at least (n - 1) / rate seconds.
    """

    def __init__(
        self,
        rate: float,
        burst: int = 1,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be > 0, got {rate}")
        self.rate = float(rate)
        self.burst = max(1, int(burst))
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = float(self.burst)
        self._last = clock()

    def acquire(self) -> float:
        """Take one token; returns the seconds waited."""
        waited = 0.0
        while True:
            with self._lock:
                now = self._clock()
                self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
                self._last = now
                if self._tokens >= 1.0 - 1e-9:  # tolerate float drift of the clock sums
                    self._tokens = max(0.0, self._tokens - 1.0)
                    return waited
                # reserve nothing: compute the wait and sleep outside the lock
                wait = (1.0 - self._tokens) / self.rate
            self._sleep(wait)
            waited += wait
