"""The background sender: outbox -> the statistics service, in batches, with backoff.

One daemon thread per outbox. It `peek`s up to `batch_size` events of one kind (the oldest
event's kind, from a window of the oldest events: `vision_core.stats.delivery`), POSTs them
as one JSON array (header `X-API-Key`) to where that kind goes (`endpoint_for`), and `ack`s
them only on a 2xx answer; every other outcome leaves them in the outbox for the next try.
The caller (a frame handler, an edge loop) only ever `put`s into the outbox and calls
`notify()`: a stats outage never slows or fails it.

Retries wait with `vision_core.net.Backoff` (capped exponential, equal jitter) up to
`max_backoff_sec`; a `Retry-After` answer is the least wait (capped by
`vision_core.net.parse_retry_after`).

Answers, by status:

- 2xx: delivered, acked. 408, 425, 429, 502, 503, 504, a dropped connection, a timeout:
  the service or the link is down or busy: retried with backoff, nothing is set aside.
  401/403 (wrong key), 404 (wrong URL), other 4xx: retried with backoff and logged as
  errors (an operator fixes the config; nothing is lost meanwhile).
- 400/413/422 (the service refused the batch as invalid or too large): the batch is
  halved until the culprit is alone; a single event that is still refused goes to the
  outbox's dead letters (logged, counted in `dead_letters_total`): one poison event never
  blocks the events behind it, and is never silently lost.
- 500 and the other 5xx: a server fault that may follow one event around (an event the
  service cannot store). After `isolate_after` failures in a row the sender isolates it:
  it halves the batch at every further 5xx, sends the halves that go through, and when a
  single event still fails `isolate_after` times it sends the NEXT event alone as a
  control. The control goes through: the service works, that event is the cause: it goes
  to the dead letters. The control fails too: the service is down for everyone: nothing
  is set aside, the sender backs off as for an outage.

HTTP: one keep-alive `vision_core.net.http.HttpClient` (httpx); the statistics service
deduplicates by event_id, so a repeat after a lost answer is harmless.
"""

from __future__ import annotations

import contextlib
import json
import random
import threading
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from vision_core.logging import StructuredLogger
from vision_core.net.http import HttpAnswer, HttpClient, TransportFailure, check_http_url
from vision_core.net.retry import parse_retry_after
from vision_core.secrets import Secret, scrub
from vision_core.stats.delivery import PEEK_BATCHES, OutboxDelivery, one_kind
from vision_core.stats.outbox import FRAME_KIND, Outbox, OutboxError, OutboxItem, payloads_as_array

__all__ = ["StatsSender", "endpoint_for"]

_TRANSIENT = {408, 425, 429, 502, 503, 504}
_POISON = {400, 413, 422}
# the ingest path of each event kind, relative to the frame events' endpoint: the tracking
# events (crossing, zone, summary: one tagged union on the wire) share one route
KIND_PATHS = {
    FRAME_KIND: "events",
    "crossing": "track-events",
    "zone": "track-events",
    "summary": "track-events",
}


def endpoint_for(endpoint: str, kind: str) -> str:
    """Where events of `kind` go: the frame endpoint `.../events` with its last path
    segment replaced by the kind's (`KIND_PATHS`, else the kind's own name)."""
    if kind == FRAME_KIND:
        return endpoint
    parts = urlsplit(endpoint)
    head = parts.path.rstrip("/").rsplit("/", 1)[0]
    path = f"{head}/{KIND_PATHS.get(kind, kind)}"
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


class StatsSender(OutboxDelivery):
    """Sends an outbox's events to the statistics service (see the module docstring)."""

    def __init__(
        self,
        outbox: Outbox,
        endpoint: str,
        *,
        api_key: str | Secret = "",
        batch_size: int = 100,
        max_backoff_sec: float = 30.0,
        base_backoff_sec: float = 0.5,
        timeout_sec: float = 10.0,
        linger_sec: float = 0.2,
        idle_poll_sec: float = 2.0,
        isolate_after: int = 3,
        logger: StructuredLogger | None = None,
        rng: random.Random | None = None,
        name: str = "stats-sender",
    ) -> None:
        try:
            check_http_url(endpoint)
        except ValueError as exc:
            raise ValueError(f"stats endpoint {exc}") from None
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if max_backoff_sec <= 0 or base_backoff_sec <= 0:
            raise ValueError("max_backoff_sec and base_backoff_sec must be > 0")
        if isolate_after < 1:
            raise ValueError(f"isolate_after must be >= 1, got {isolate_after}")
        super().__init__(
            outbox,
            base_backoff_sec=base_backoff_sec,
            max_backoff_sec=max_backoff_sec,
            logger=logger,
            rng=rng,
            name=name,
        )
        self.endpoint = endpoint
        key = api_key.reveal() if isinstance(api_key, Secret) else api_key
        headers = {"Content-Type": "application/json"}
        if key:
            headers["X-API-Key"] = key
        self._http = HttpClient(timeout_sec=timeout_sec, headers=headers, max_connections=1)
        self.batch_size = batch_size
        self.max_backoff_sec = max_backoff_sec
        self.timeout_sec = timeout_sec
        self.linger_sec = linger_sec
        self.idle_poll_sec = idle_poll_sec
        self.isolate_after = isolate_after
        self._wake = threading.Event()  # new events were put
        self._interrupt = threading.Event()  # flush/close: cut a backoff or linger short
        self._stop = threading.Event()
        self._limit = batch_size  # shrinks while a poison batch is being isolated
        self._fault_run = 0  # 5xx answers in a row (isolation starts at isolate_after)
        self._suspect: OutboxItem | None = None  # a lone event 5xx follows: being checked
        self._suspect_status = 0
        self._suspect_detail = ""
        self.next_attempt_at = 0.0  # time.monotonic() of the next try while backing off
        self.sent_total = 0
        self.batches_total = 0

    # -- what callers use ------------------------------------------------------------------

    @property
    def consecutive_failures(self) -> int:
        return self._backoff.attempts

    def notify(self) -> None:
        """New events are in the outbox: send soon (never blocks, never raises)."""
        self._wake.set()

    def _hurry(self) -> None:  # cut a running backoff short once (one immediate try)
        self._interrupt.set()
        self._wake.set()

    def _shutdown(self) -> None:
        self._stop.set()
        self._interrupt.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=self.timeout_sec + 1.0)
        self._http.close()

    def snapshot(self) -> dict[str, Any]:
        """Counters for /metrics and health pages."""
        return {
            "sent_total": self.sent_total,
            "batches_total": self.batches_total,
            "failures_total": self.failures_total,
            "dead_letters_total": self.dead_letters_total,
            "consecutive_failures": self._backoff.attempts,
            "last_error": self.outbox.last_error,
        }

    # -- the thread -------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                delay = self._step()
            except Exception as exc:  # the sender must outlive any surprise
                delay = self._fail(f"sender error: {type(exc).__name__}: {exc}", None)
            if delay is None:  # idle: wait for new events (or poll now and then)
                self._wake.wait(self.idle_poll_sec)
                self._wake.clear()
            elif delay > 0:
                self.next_attempt_at = time.monotonic() + delay
                self._interrupt.wait(delay)
                self._interrupt.clear()
                self.next_attempt_at = 0.0

    def _batch(self) -> tuple[list[OutboxItem], bool]:
        """The next events to send (`delivery.one_kind`: up to `_limit` of the oldest
        event's kind), and whether the outbox holds a full window (waiting for more would
        not grow the batch). While a suspect is checked: the event after it (the control),
        or the suspect itself again when nothing follows it yet."""
        if self._suspect is not None:
            return self.outbox.peek(1, offset=1) or [self._suspect], True
        window = self._limit * PEEK_BATCHES
        rows = self.outbox.peek(window)
        return one_kind(rows, self._limit), len(rows) >= window

    def _step(self) -> float | None:
        """One batch. Returns None when idle, else the seconds to wait before the next."""
        try:
            items, backlog = self._batch()
        except OutboxError as exc:
            return self._fail(str(exc), None)
        if not items:
            return None
        if (
            not backlog
            and len(items) < self._limit
            and self.linger_sec > 0
            and self._backoff.attempts == 0
        ):
            if self._interrupt.wait(self.linger_sec):  # let a few more frames join
                self._interrupt.clear()
            with contextlib.suppress(OutboxError):
                items = self._batch()[0] or items
        url = endpoint_for(self.endpoint, items[0].kind)
        try:
            answer = self._http.post(url, payloads_as_array(items))
        except TransportFailure as exc:
            return self._fail(f"cannot reach {url}: {type(exc).__name__}: {exc}", None)
        if answer.ok:
            self._delivered(items)
            return 0.0
        return self._refused(items, url, answer)

    def _refused(self, items: list[OutboxItem], url: str, answer: HttpAnswer) -> float:
        status = answer.status
        detail = _detail(answer.body)
        if status in _POISON:
            return self._poison(items, status, detail)
        retry_after = parse_retry_after(answer.headers.get("retry-after"))
        if status >= 500 and status not in _TRANSIENT:
            return self._fault(items, url, status, detail, retry_after)
        if status in _TRANSIENT:
            what = f"{url} answered {status}"
        elif status in (401, 403):
            what = (
                f"{url} refused the API key ({status}): check the variable named by "
                "stats.api_key_env"
            )
        else:
            what = f"{url} answered {status}: check deploy.stats.endpoint"
        return self._fail(f"{what}{f': {detail}' if detail else ''}", retry_after)

    def _delivered(self, items: list[OutboxItem]) -> None:
        with self._settling:
            self.outbox.ack(it.id for it in items)
            self.sent_total += len(items)
            self.batches_total += 1
            if self._suspect is not None:
                suspect, self._suspect = self._suspect, None
                if items[0].id != suspect.id:  # the control went through: the suspect's fault
                    self._bury(suspect, self._suspect_status, self._suspect_reason())
                    return
            self._recovered()
            self._limit = min(self.batch_size, self._limit * 2)
            if self._limit >= self.batch_size:  # back to full batches: isolation is over
                self._fault_run = 0
            self.outbox.set_last_error(None)

    def _poison(self, items: list[OutboxItem], status: int, detail: str) -> float:
        if len(items) > 1:  # isolate the culprit: halve, retry at once
            self._limit = max(1, len(items) // 2)
            return 0.0
        self._bury(items[0], status, detail)
        return 0.0

    def _fault(
        self,
        items: list[OutboxItem],
        url: str,
        status: int,
        detail: str,
        retry_after: float | None,
    ) -> float:
        message = f"{url} answered {status}{f': {detail}' if detail else ''}"
        if self._suspect is not None and items[0].id == self._suspect.id:
            return self._fail(message, retry_after)  # nothing after it to compare with yet
        if self._suspect is not None:  # the control failed too: the service is down
            self.log.warn(
                "stats.fault_everywhere",
                f"{url} fails every event ({status}), not one in particular: backing off",
                event_id=self._suspect.event_id,
            )
            self._suspect = None
            self._fault_run = 0
            self._limit = self.batch_size
            return self._fail(message, retry_after)
        self._fault_run += 1
        delay = self._fail(message, retry_after)
        if self._fault_run < self.isolate_after:
            return delay
        if len(items) > 1:  # isolating: halve at once
            self._limit = max(1, len(items) // 2)
        else:  # a lone event fails: check the next one alone before blaming it
            self._suspect = items[0]
            self._suspect_status = status
            self._suspect_detail = message
        return delay if retry_after is not None else min(delay, self._backoff.base)

    def _suspect_reason(self) -> str:
        return f"{self._suspect_detail} (only this event fails: the events after it go through)"

    def _bury(self, item: OutboxItem, status: int, detail: str) -> None:
        reason = scrub(detail)
        message = f"{self.endpoint} refused event {item.event_id} ({status}): {reason}"
        if self._set_aside(item, status, reason, message):
            self._fault_run = 0
            self._limit = self.batch_size


def _detail(body: bytes) -> str:
    """A short reason from an error body (the service's JSON `detail`, else the text)."""
    text = body[:2000].decode("utf-8", errors="replace").strip()
    if text.startswith("{"):
        with contextlib.suppress(ValueError):
            obj = json.loads(text)
            if isinstance(obj, dict) and obj.get("detail"):
                return str(obj["detail"])[:300]
    return text[:300]
