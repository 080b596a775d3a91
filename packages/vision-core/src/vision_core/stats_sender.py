"""The background sender: outbox -> `POST deploy.stats.endpoint`, in batches, with backoff.

One daemon thread per outbox. It `peek`s up to `batch_size` events, POSTs them as one JSON
array (header `X-API-Key`), and `ack`s them only on a 2xx answer; every other outcome
leaves them in the outbox for the next try. The caller (a frame handler, an edge loop)
only ever `put`s into the outbox and calls `notify()`: a stats outage never slows or fails
it.

Retries: capped exponential backoff with "equal jitter" (a delay in [d/2, d] for
d = min(max_backoff_sec, base_backoff_sec * 2**(failures - 1))), and a `Retry-After`
answer (seconds or an HTTP date) is honoured as the least delay, up to
`RETRY_AFTER_CEILING_SEC` so that a bogus header cannot silence a device for days.

Answers, by status:

- 2xx: delivered, acked. 408, 425, 429, 5xx, a dropped connection, a timeout: retried
  with backoff. 401/403 (wrong key), 404 (wrong URL), other 4xx: retried with backoff and
  logged as errors (an operator fixes the config; nothing is lost meanwhile).
- 400/422 (the service rejected the batch as invalid) and 413 (too large): the batch is
  halved until the culprit is alone; a single event that is still rejected is dropped,
  logged and counted in `rejected_total` (one poison event must not block the outbox).

HTTP is stdlib `http.client` with one keep-alive connection (devices stay light); a
connection the server closed while idle is retried once at once on a fresh one (the
statistics service deduplicates by event_id, so a repeat is harmless).
"""

from __future__ import annotations

import contextlib
import http.client
import random
import threading
import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from vision_core.errors import ConfigError
from vision_core.logging import StructuredLogger
from vision_core.outbox import Outbox, OutboxError, OutboxItem, payloads_as_array
from vision_core.secrets import Secret, resolve_secret, scrub

if TYPE_CHECKING:
    from vision_core.config.schema import StatsSink

__all__ = ["RETRY_AFTER_CEILING_SEC", "StatsSender", "parse_retry_after"]

RETRY_AFTER_CEILING_SEC = 600.0
_TRANSIENT = {408, 425, 429}
_POISON = {400, 413, 422}
_REPEAT_LOG_SEC = 60.0


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP date), else None."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None or when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class _Answer:
    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body


class StatsSender:
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
        logger: StructuredLogger | None = None,
        rng: random.Random | None = None,
        name: str = "stats-sender",
    ) -> None:
        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"stats endpoint must be an http(s):// URL, got {endpoint!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if max_backoff_sec <= 0 or base_backoff_sec <= 0:
            raise ValueError("max_backoff_sec and base_backoff_sec must be > 0")
        self.outbox = outbox
        self.endpoint = endpoint
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        self._path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        key = api_key.reveal() if isinstance(api_key, Secret) else api_key
        self._headers = {"Content-Type": "application/json", "Connection": "keep-alive"}
        if key:
            self._headers["X-API-Key"] = key
        self.batch_size = batch_size
        self.max_backoff_sec = max_backoff_sec
        self.base_backoff_sec = base_backoff_sec
        self.timeout_sec = timeout_sec
        self.linger_sec = linger_sec
        self.idle_poll_sec = idle_poll_sec
        self.log = logger or StructuredLogger(None)
        self._rng = rng or random.Random()
        self._name = name
        self._conn: http.client.HTTPConnection | None = None
        self._wake = threading.Event()  # new events were put
        self._interrupt = threading.Event()  # flush/close: cut a backoff or linger short
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._limit = batch_size  # shrinks while a poison batch is being isolated
        self._failures = 0
        self._last_log = 0.0
        self._last_logged_error: str | None = None
        self.next_attempt_at = 0.0  # time.monotonic() of the next try while backing off
        self.sent_total = 0
        self.batches_total = 0
        self.failures_total = 0
        self.rejected_total = 0

    @classmethod
    def from_config(
        cls,
        outbox: Outbox,
        sink: StatsSink,
        *,
        logger: StructuredLogger | None = None,
        environ: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> StatsSender:
        """A sender for `deploy.stats` (the API key read from the env var it names)."""
        key = resolve_secret(sink.api_key_env, key_path="deploy.stats.api_key_env", environ=environ)
        try:
            return cls(
                outbox,
                sink.endpoint,
                api_key=key,
                batch_size=sink.batch_size,
                max_backoff_sec=sink.max_backoff_sec,
                logger=logger,
                **kwargs,
            )
        except ValueError as exc:
            raise ConfigError(f"deploy.stats.endpoint: {exc}") from exc

    # -- what callers use ------------------------------------------------------------------

    @property
    def consecutive_failures(self) -> int:
        return self._failures

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> StatsSender:
        """Start the thread (idempotent)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread.start()
        return self

    def notify(self) -> None:
        """New events are in the outbox: send soon (never blocks, never raises)."""
        self._wake.set()

    def flush(self, timeout: float) -> bool:
        """Wait up to `timeout` s for the outbox to empty; True when it did.

        Cuts a running backoff short once (one immediate try). What is not sent stays in
        the outbox, on disk, for the next start.
        """
        deadline = time.monotonic() + max(0.0, timeout)
        self._interrupt.set()
        self._wake.set()
        while True:
            try:
                if self.outbox.pending() == 0:
                    return True
            except OutboxError:
                return False
            if time.monotonic() >= deadline or not self.running:
                return self.outbox.pending() == 0
            time.sleep(0.01)

    def close(self, flush_timeout: float = 0.0) -> bool:
        """Flush up to `flush_timeout` s, then stop the thread; True when nothing is pending."""
        drained = self.flush(flush_timeout) if flush_timeout > 0 and self.running else False
        self._stop.set()
        self._interrupt.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=self.timeout_sec + 1.0)
        self._close_conn()
        with contextlib.suppress(OutboxError):
            drained = self.outbox.pending() == 0
        return drained

    def snapshot(self) -> dict[str, Any]:
        """Counters for /metrics and health pages."""
        return {
            "sent_total": self.sent_total,
            "batches_total": self.batches_total,
            "failures_total": self.failures_total,
            "rejected_total": self.rejected_total,
            "consecutive_failures": self._failures,
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
        self._close_conn()

    def _step(self) -> float | None:
        """One batch. Returns None when idle, else the seconds to wait before the next."""
        try:
            items = self.outbox.peek(self._limit)
        except OutboxError as exc:
            return self._fail(str(exc), None)
        if not items:
            return None
        if len(items) < self._limit and self.linger_sec > 0 and self._failures == 0:
            if self._interrupt.wait(self.linger_sec):  # let a few more frames join
                self._interrupt.clear()
            with contextlib.suppress(OutboxError):
                items = self.outbox.peek(self._limit) or items
        try:
            answer = self._post(payloads_as_array(items))
        except (OSError, http.client.HTTPException) as exc:
            return self._fail(f"cannot reach {self.endpoint}: {type(exc).__name__}: {exc}", None)
        status = answer.status
        if 200 <= status < 300:
            self._delivered(items)
            return 0.0
        detail = _detail(answer.body)
        if status in _POISON:
            return self._poison(items, status, detail)
        retry_after = parse_retry_after(answer.headers.get("retry-after"))
        if status in _TRANSIENT or status >= 500:
            what = f"{self.endpoint} answered {status}"
        elif status in (401, 403):
            what = (
                f"{self.endpoint} refused the API key ({status}): check the variable named "
                "by deploy.stats.api_key_env"
            )
        else:
            what = f"{self.endpoint} answered {status}: check deploy.stats.endpoint"
        return self._fail(f"{what}{f': {detail}' if detail else ''}", retry_after)

    def _delivered(self, items: list[OutboxItem]) -> None:
        self.outbox.ack(it.id for it in items)
        self.sent_total += len(items)
        self.batches_total += 1
        if self._failures:
            self.log.info(
                "stats.recovered",
                f"stats delivery to {self.endpoint} recovered after {self._failures} failed "
                f"attempt(s); {self.outbox.pending()} event(s) still queued",
                failures=self._failures,
            )
        self._failures = 0
        self._last_logged_error = None
        self._limit = min(self.batch_size, self._limit * 2)
        self.outbox.set_last_error(None)

    def _poison(self, items: list[OutboxItem], status: int, detail: str) -> float:
        if len(items) > 1:  # isolate the culprit: halve, retry at once
            self._limit = max(1, len(items) // 2)
            return 0.0
        (item,) = items
        self.outbox.ack([item.id])
        self.rejected_total += 1
        message = f"{self.endpoint} rejected event {item.event_id} ({status}): {detail}"
        self.outbox.set_last_error(message)
        self.log.error(
            "stats.rejected",
            f"{message}; the event is dropped",
            event_id=item.event_id,
            status=status,
        )
        return 0.0

    def _fail(self, message: str, retry_after: float | None) -> float:
        message = scrub(message)
        self._failures += 1
        self.failures_total += 1
        exp = min(self.max_backoff_sec, self.base_backoff_sec * 2 ** min(self._failures - 1, 30))
        delay = exp / 2 + self._rng.uniform(0.0, exp / 2)
        if retry_after is not None:
            delay = max(delay, min(retry_after, RETRY_AFTER_CEILING_SEC))
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
                failures=self._failures,
                retry_in_sec=round(delay, 3),
            )
            self._last_logged_error, self._last_log = message, now
        return delay

    # -- HTTP -----------------------------------------------------------------------------------

    def _connect(self) -> http.client.HTTPConnection:
        cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
        return cls(self._host, self._port, timeout=self.timeout_sec)

    def _close_conn(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None

    def _post(self, body: bytes) -> _Answer:
        reused = self._conn is not None
        try:
            return self._request(body)
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            if not reused:
                raise
            return self._request(body)  # the server closed our idle keep-alive connection

    def _request(self, body: bytes) -> _Answer:
        if self._conn is None:
            self._conn = self._connect()
        conn = self._conn
        try:
            conn.request("POST", self._path, body=body, headers=self._headers)
            resp = conn.getresponse()
            data = resp.read()
        except BaseException:
            self._close_conn()
            raise
        if resp.will_close:
            self._close_conn()
        headers = {k.lower(): v for k, v in resp.getheaders()}
        return _Answer(resp.status, headers, data)


def _detail(body: bytes) -> str:
    """A short reason from an error body (the service's JSON `detail`, else the text)."""
    text = body[:2000].decode("utf-8", errors="replace").strip()
    if text.startswith("{"):
        import json

        with contextlib.suppress(ValueError):
            obj = json.loads(text)
            if isinstance(obj, dict) and obj.get("detail"):
                return str(obj["detail"])[:300]
    return text[:300]
