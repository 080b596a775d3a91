"""One backoff formula and one `Retry-After` parser for every retry loop.

`Backoff`: capped exponential with jitter. Attempt k (1-based) waits
``min(cap, base * 2**(k-1))`` scaled by a random factor in ``[1 - jitter, 1]`` ("equal
jitter" at the default 0.5: never less than half the step, so a fleet that lost its server
at the same moment does not come back in one wave, and never more than the cap). jitter=0
gives the plain doubling a camera reopen loop wants.

`parse_retry_after`: delta-seconds or an HTTP date, capped at `RETRY_AFTER_CAP_SEC` so a
bogus header cannot silence a device for days. A server's Retry-After is a floor: the wait
is ``max(backoff, retry_after)``.
"""

from __future__ import annotations

import random
import threading
import time
from email.utils import parsedate_to_datetime

__all__ = ["RETRY_AFTER_CAP_SEC", "Backoff", "parse_retry_after"]

RETRY_AFTER_CAP_SEC = 300.0


def parse_retry_after(
    value: str | None, *, now: float | None = None, cap: float = RETRY_AFTER_CAP_SEC
) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP date), else None.

    Negative values and dates in the past give 0; anything above `cap` gives `cap`.
    """
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None or when.tzinfo is None:
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if seconds != seconds:  # NaN
        return None
    return max(0.0, min(seconds, cap))


class Backoff:
    """Capped exponential backoff with jitter, counting its own attempts. Thread-safe."""

    def __init__(
        self,
        base: float,
        cap: float,
        *,
        jitter: float = 0.5,
        rng: random.Random | None = None,
    ) -> None:
        if base <= 0 or cap <= 0:
            raise ValueError(f"backoff base and cap must be > 0, got {base} and {cap}")
        if not 0.0 <= jitter <= 1.0:
            raise ValueError(f"jitter must be in [0, 1], got {jitter}")
        self.base, self.cap, self.jitter = float(base), float(cap), float(jitter)
        self._rng = rng or random.Random()
        self._lock = threading.Lock()
        self.attempts = 0  # failures since the last success

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failure number `attempt` (1-based); a Retry-After is a
        floor (already capped by `parse_retry_after`)."""
        step = min(self.cap, self.base * 2 ** min(max(attempt, 1) - 1, 62))
        if self.jitter:
            with self._lock:
                u = self._rng.random()
            step *= 1.0 - self.jitter * u
        return max(step, retry_after) if retry_after is not None else step

    def next(self, retry_after: float | None = None) -> float:
        """Count one more failure and return the wait before the next try."""
        with self._lock:
            self.attempts += 1
            attempt = self.attempts
        return self.delay(attempt, retry_after)

    def reset(self) -> None:
        """A success: the next failure starts from `base` again."""
        with self._lock:
            self.attempts = 0
