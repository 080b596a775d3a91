"""What the HTTP sender and the MQTT publisher share: how a batch is chosen, and the thread,
flush, failure log and dead letters of a delivery.

A batch holds events of one kind (one route, one topic, one JSON array). It is taken from
a window of the oldest pending events, `PEEK_BATCHES` batches deep: every event of the
oldest event's kind in that window, up to the batch size, in order of capture. The events
of other kinds in the window wait for the next batches (the oldest of them is the next
batch's first), so interleaved kinds (a frame event per frame, a crossing now and then)
still go in full batches, and each kind keeps its order of capture. A batch that is not
full waits `linger_sec` for more events only when the window is not full either (waiting
cannot add events to a full window).
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections.abc import Sequence
from typing import Self

from vision_core.logging import StructuredLogger
from vision_core.net.retry import Backoff
from vision_core.secrets import scrub
from vision_core.stats.outbox import Outbox, OutboxError, OutboxItem

__all__ = ["PEEK_BATCHES", "OutboxDelivery", "one_kind"]

PEEK_BATCHES = 4  # the window a batch is taken from, in batches
_REPEAT_LOG_SEC = 60.0  # the same failure is logged again after this long


def one_kind(window: Sequence[OutboxItem], limit: int) -> list[OutboxItem]:
    """Up to `limit` events of `window` (oldest first) of the first event's kind, in order."""
    if not window:
        return []
    kind = window[0].kind
    return [it for it in window if it.kind == kind][:limit]


class OutboxDelivery:
    """The part of a sender that does not depend on the transport: its thread (`_run`, of
    the subclass), `flush`/`close` (the subclass hurries in `_hurry` and stops in
    `_shutdown`), the failure backoff and its log lines, and setting an event aside."""

    endpoint: str  # where the events go, for log lines

    def __init__(
        self,
        outbox: Outbox,
        *,
        base_backoff_sec: float,
        max_backoff_sec: float,
        logger: StructuredLogger | None,
        rng: random.Random | None,
        name: str,
    ) -> None:
        self.outbox = outbox
        self.log = logger or StructuredLogger(None)
        self._backoff = Backoff(base_backoff_sec, max_backoff_sec, rng=rng)
        self._name = name
        self._thread: threading.Thread | None = None
        self._last_log = 0.0
        self._last_logged_error: str | None = None
        self.failures_total = 0
        self.dead_letters_total = 0  # events this delivery set aside
        # held over an ack or a burial and the counters that go with it, so that whoever sees the
        # outbox empty (`pending`, `flush`) also sees the counters brought up to date
        self._settling = threading.RLock()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> Self:
        """Start the thread (idempotent)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread.start()
        return self

    def pending(self) -> int:
        """Events not delivered yet, read so that the counters (`sent_total`, the failure
        run) already account for every event acked: 0 here means they are final."""
        with self._settling:
            return self.outbox.pending()

    def flush(self, timeout: float) -> bool:
        """Wait up to `timeout` s for the outbox to empty (one immediate try, no lingering);
        True when it did. What is not sent stays in the outbox, on disk, for the next start."""
        deadline = time.monotonic() + max(0.0, timeout)
        self._hurry()
        while True:
            try:
                if self.pending() == 0:
                    return True
            except OutboxError:
                return False
            if time.monotonic() >= deadline or not self.running:
                return self.pending() == 0
            time.sleep(0.01)

    def close(self, flush_timeout: float = 0.0) -> bool:
        """Flush up to `flush_timeout` s, then stop; True when nothing is pending."""
        drained = self.flush(flush_timeout) if flush_timeout > 0 and self.running else False
        self._shutdown()
        with contextlib.suppress(OutboxError):
            drained = self.outbox.pending() == 0
        return drained

    def _run(self) -> None:
        raise NotImplementedError

    def _hurry(self) -> None:
        """Cut a wait (backoff, linger) short: `flush` is waiting."""
        raise NotImplementedError

    def _shutdown(self) -> None:
        """Stop the thread and close the transport."""
        raise NotImplementedError

    def _recovered(self) -> None:
        """A delivery went through: log the recovery after failures, reset the backoff."""
        if self._backoff.attempts:
            self.log.info(
                "stats.recovered",
                f"stats delivery to {self.endpoint} recovered after {self._backoff.attempts} "
                f"failed attempt(s); {self.outbox.pending()} event(s) still queued",
                failures=self._backoff.attempts,
            )
            self._backoff.reset()
            self._last_logged_error = None

    def _set_aside(self, item: OutboxItem, status: int, reason: str, message: str) -> bool:
        """Move a refused event to the dead letters and say so (`message`: who refused it
        and why); False when it could not be moved or was no longer pending."""
        with self._settling:
            try:
                if not self.outbox.bury(item, status, reason):
                    return False
            except OutboxError as exc:
                self.log.error(
                    "stats.bury_failed", f"cannot set event {item.event_id} aside: {exc}"
                )
                return False
            self.dead_letters_total += 1
        self.outbox.set_last_error(message)
        fields = {"status": status} if status else {}
        self.log.error(
            "stats.dead_letter",
            f"{message}; the event is set aside in the outbox's dead letters (see "
            "`vision-edge dead-letters`), the events behind it go on",
            event_id=item.event_id,
            **fields,
        )
        return True

    def _fail(self, message: str, retry_after: float | None = None) -> float:
        """Count a failure, keep it as the outbox's last error, log it (the same one at
        most once a minute); returns the backoff before the next try."""
        message = scrub(message)
        self.failures_total += 1
        delay = self._backoff.next(retry_after)
        with contextlib.suppress(OutboxError):
            self.outbox.set_last_error(message)
        now = time.monotonic()
        if message != self._last_logged_error or now - self._last_log >= _REPEAT_LOG_SEC:
            pending: int | str
            try:
                pending = self.outbox.pending()
            except OutboxError:
                pending = "?"
            self.log.warn(
                "stats.send_failed",
                f"stats not delivered ({message}); {pending} event(s) kept in the outbox, "
                f"next try in {delay:.1f}s",
                failures=self._backoff.attempts,
                retry_in_sec=round(delay, 3),
            )
            self._last_logged_error, self._last_log = message, now
        return delay
