"""`vision-stats ingest-mqtt`: events from an MQTT broker into the store, in batches.

The devices publish to `<prefix>/<device_id>/events/<kind>` (see
`vision_core.stats.mqtt`); every ingest worker subscribes to the shared subscription
`$share/<group>/<prefix>/+/events/#`, so the broker splits the stream between the workers
of one group (`stats.mqtt.group`), and each worker writes what it gets in batches.

Nothing is lost, nothing counts twice:

- QoS 1 with manual acks (paho-mqtt 2): a message is acknowledged to the broker only after
  the transaction that stored its events has COMMITTED. A worker that dies (SIGKILL, power)
  before that leaves the message unacknowledged: the broker keeps it in the worker's
  persistent session (MQTT 5 session expiry `stats.mqtt.session_expiry_sec`, a stable
  client id per worker) and sends it again when the worker reconnects.
- The store is idempotent by event_id (`StatsStore.insert`): a message delivered again
  (after a crash between COMMIT and the ack, a device re-sending after a lost PUBACK)
  stores nothing new.
- An ack is sent only on the connection the message came on: after a reconnect the broker
  re-delivers what was not acknowledged, and the repeat is deduplicated.
- The broker sends at most `stats.mqtt.receive_maximum` unacknowledged messages, which
  bounds the worker's memory and the size of a batch.

Every kind the store holds is taken: `frame` (a StatsEvent or a JSON array of them) and
the tracking events `crossing`, `zone`, `summary` (a JSON array, tagged by `kind`), checked
by the same decoders as the HTTP API (`vision_stats.decode`: bounds, the time window).

What is dropped (acknowledged, counted, logged; the consumer goes on): a payload that
fails those checks (`malformed_total`), a topic outside the layout or of a kind no store
holds (`unknown_kind_total`), and an event the database refuses even alone
(`rejected_total`: the batch is split to find it). A database that is
down (StoreUnavailableError) is waited for with backoff: nothing is acknowledged meanwhile.

A broker restart is survived when the broker persists its sessions (Mosquitto:
`persistence true`): the worker reconnects with its session present and the broker
delivers what it queued. Mosquitto queues a stopped worker's share of the stream for it
(it does not hand it to the other workers), up to `max_queued_messages`: run every worker
under a supervisor that restarts it, and raise that limit (see the root README).
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from vision_core.errors import ConfigError
from vision_core.logging import StructuredLogger
from vision_core.net.mqtt import BrokerLink, check_topic_level, check_topic_prefix
from vision_core.net.retry import Backoff
from vision_core.secrets import Secret, resolve_secret, scrub
from vision_core.stats import FRAME_KIND
from vision_core.types import StatsEvent, TrackEvent
from vision_stats.decode import decode_events, decode_track_events
from vision_stats.errors import (
    InvalidEventsError,
    MalformedBodyError,
    StoreError,
    StoreUnavailableError,
)
from vision_stats.settings import StatsSettings
from vision_stats.store import StatsStore

if TYPE_CHECKING:
    from vision_core.config import PipelineConfig
    from vision_core.config.schema import MqttIngest as MqttIngestSection

__all__ = ["IngestFigures", "IngestSettings", "MqttIngest", "subscription"]

PROGRESS_EVERY_SEC = 10.0
_DROP_LOG_EVERY_SEC = 1.0
TRACK_KINDS = frozenset({"crossing", "zone", "summary"})


def subscription(group: str, prefix: str) -> str:
    """The shared subscription every worker of `group` takes."""
    return f"$share/{group}/{prefix}/+/events/#"


@dataclass(frozen=True, slots=True, kw_only=True)
class IngestSettings:
    """`stats.mqtt` and `stats.db` made concrete (CLI flags override the config)."""

    db: str
    mqtt: MqttIngestSection
    client_id: str
    group: str
    password: Secret = field(default_factory=lambda: Secret("", ""))
    checks: StatsSettings = field(default_factory=StatsSettings)  # bounds, as the HTTP API

    @classmethod
    def from_config(
        cls,
        cfg: PipelineConfig,
        *,
        db: str | None = None,
        client_id: str | None = None,
        group: str | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> IngestSettings:
        m = cfg.stats.mqtt
        settings = cls(
            db=db or cfg.stats.db,
            mqtt=m,
            client_id=client_id or m.client_id,
            group=group or m.group,
            password=resolve_secret(
                m.password_env, key_path="stats.mqtt.password_env", environ=environ
            ),
            checks=StatsSettings(max_ts_skew_days=cfg.stats.max_ts_skew_days),
        )
        check_topic_level(settings.group, "stats.mqtt.group")
        check_topic_prefix(m.topic_prefix, "stats.mqtt.topic_prefix")
        if not settings.client_id:
            raise ConfigError("stats.mqtt.client_id: empty (each worker needs its own)")
        return settings


class DelayHistogram:
    """End-to-end delays (ms) in 2 % wide log buckets: p50/p99 of millions in a few KB."""

    _STEP = math.log(1.02)

    def __init__(self) -> None:
        self._counts: Counter[int] = Counter()
        self.count = 0

    def add(self, ms: float) -> None:
        self._counts[int(math.log(max(ms, 0.01)) / self._STEP)] += 1
        self.count += 1

    def quantile(self, q: float) -> float | None:
        if not self.count:
            return None
        rank = q * (self.count - 1)
        seen = 0
        for bucket in sorted(self._counts):
            seen += self._counts[bucket]
            if seen > rank:
                return round(math.exp((bucket + 0.5) * self._STEP), 1)
        return None  # pragma: no cover


@dataclass
class IngestFigures:
    """What a worker did (its progress lines and its summary)."""

    messages_total: int = 0
    events_total: int = 0  # events in well-formed messages
    stored_total: int = 0  # new rows
    duplicates_total: int = 0  # already stored (a re-delivery)
    malformed_total: int = 0  # messages dropped: not events
    unknown_kind_total: int = 0  # messages dropped: a topic or kind not stored here
    rejected_total: int = 0  # messages dropped: the database refused an event in it
    batches_total: int = 0
    store_retries_total: int = 0
    connects_total: int = 0
    decode_sec: float = 0.0  # time in JSON decoding (where the worker's CPU goes)
    store_sec: float = 0.0  # time in the store's insert transactions
    delay_ms: DelayHistogram = field(default_factory=DelayHistogram)

    def as_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in vars(self).items() if k != "delay_ms"}
        out["decode_sec"], out["store_sec"] = round(self.decode_sec, 3), round(self.store_sec, 3)
        out["delay_ms_p50"] = self.delay_ms.quantile(0.50)
        out["delay_ms_p99"] = self.delay_ms.quantile(0.99)
        return out


@dataclass(slots=True)
class _Message:
    mid: int
    qos: int
    topic: str
    payload: bytes
    generation: int  # the connection it came on: acked only on that one
    events: int  # the events it holds, by a count of "event_id" keys (sizes a batch)


@dataclass(slots=True)
class _Decoded:
    message: _Message
    events: list[StatsEvent]
    track_events: list[TrackEvent] = field(default_factory=list)


class MqttIngest:
    """One ingest worker (see the module docstring): `run(stop)` until `stop` is set."""

    def __init__(
        self,
        store: StatsStore,
        settings: IngestSettings,
        *,
        logger: StructuredLogger | None = None,
        max_backoff_sec: float = 30.0,
        progress_every_sec: float = PROGRESS_EVERY_SEC,
    ) -> None:
        m = settings.mqtt
        self.store = store
        self.settings = settings
        self.prefix = m.topic_prefix
        self.topic = subscription(settings.group, m.topic_prefix)
        self.batch_size = m.batch_size
        self.max_wait = m.max_batch_wait_ms / 1000.0
        self.progress_every_sec = progress_every_sec
        self.log = logger or StructuredLogger(None)
        self.figures = IngestFigures()
        self._store_backoff = Backoff(0.2, max_backoff_sec)
        self._cond = threading.Condition()
        self._inbox: list[_Message] = []
        self._inbox_events = 0
        self._generation = 0
        self._dropped_unlogged = 0
        self._last_drop_log = 0.0
        self.link = BrokerLink(
            m,
            key_path="stats.mqtt",
            client_id=settings.client_id,
            password=settings.password,
            clean_start=False,
            session_expiry_sec=m.session_expiry_sec,
            receive_maximum=m.receive_maximum,
            manual_ack=True,
            max_backoff_sec=max_backoff_sec,
            logger=self.log,
            on_up=self._up,
        )
        self.link.client.on_message = self._received

    # -- the network thread -----------------------------------------------------------------

    def _up(self, session_present: bool) -> None:
        self._generation += 1
        self.figures.connects_total += 1
        self.link.client.subscribe(self.topic, qos=1)
        self.log.info(
            "ingest.connected",
            f"{self.settings.client_id} subscribed to {self.topic} on {self.link.url} "
            f"(session {'resumed' if session_present else 'new'})",
            broker=self.link.url,
            session_present=session_present,
        )

    def _received(self, _client: object, _userdata: object, msg: Any) -> None:
        payload = bytes(msg.payload)
        events = max(1, payload.count(b'"event_id"'))  # what the batch is sized by
        m = _Message(int(msg.mid), int(msg.qos), str(msg.topic), payload, self._generation, events)
        with self._cond:
            self._inbox.append(m)
            self._inbox_events += events
            if len(self._inbox) == 1 or self._inbox_events >= self.batch_size:
                self._cond.notify()

    def _ack(self, messages: list[_Message]) -> Callable[[], None]:
        def send() -> None:  # on the network thread
            for m in messages:
                if m.qos and m.generation == self._generation and self.link.connected:
                    self.link.client.ack(m.mid, m.qos)

        return send

    def _network(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.link.run_once(0.5)
            except Exception as exc:  # the link must outlive any surprise
                self.log.error("ingest.link_error", f"MQTT link error: {type(exc).__name__}: {exc}")
                time.sleep(0.5)

    # -- the worker ---------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> IngestFigures:
        """Consume until `stop` is set; the batch in hand is finished (committed, acked)."""
        net_stop = threading.Event()
        net = threading.Thread(target=self._network, args=(net_stop,), name="mqtt-link")
        net.start()
        started = next_progress = time.monotonic()
        next_progress += self.progress_every_sec
        try:
            while not stop.is_set():
                batch = self._take(stop)
                if batch:
                    self._process(batch, stop)
                now = time.monotonic()
                if now >= next_progress:
                    self._progress("ingest.progress", now - started)
                    next_progress = now + self.progress_every_sec
        finally:
            done = threading.Event()
            self.link.call_soon(done.set)  # the last acks are written before DISCONNECT
            done.wait(2.0)
            net_stop.set()
            self.link.wake()
            net.join(timeout=5.0)
            self.link.close()
            self._progress("ingest.summary", time.monotonic() - started)
        return self.figures

    def _take(self, stop: threading.Event) -> list[_Message]:
        """The next batch: up to batch_size events of what has come in, waiting up to
        max_batch_wait_ms from the first message for the batch to fill."""
        with self._cond:
            if not self._inbox:
                self._cond.wait(0.25)
                if not self._inbox:
                    return []
            deadline = time.monotonic() + self.max_wait
            while self._inbox_events < self.batch_size and not stop.is_set():
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            take = events = 0
            for m in self._inbox:  # at most batch_size events (at least one message)
                if take and events + m.events > self.batch_size:
                    break
                take += 1
                events += m.events
            batch, self._inbox = self._inbox[:take], self._inbox[take:]
            self._inbox_events -= events
        return batch

    def _process(self, batch: list[_Message], stop: threading.Event) -> None:
        good: list[_Decoded] = []
        dropped: list[_Message] = []
        t0 = time.perf_counter()
        for m in batch:
            decoded = self._decode(m)
            if decoded is None:
                dropped.append(m)
            else:
                good.append(decoded)
        self.figures.decode_sec += time.perf_counter() - t0
        self.figures.messages_total += len(batch)
        if good and not self._store(good, stop):
            # stopped while the database was down: ack only what was dropped
            self.link.call_soon(self._ack(dropped))
            return
        self.link.call_soon(self._ack(batch))

    def _decode(self, m: _Message) -> _Decoded | None:
        kind = self._kind(m.topic)
        if kind is None:
            self._drop(m, "unknown_kind", "the topic is not <prefix>/<device>/events/<kind>")
            return None
        checks = self.settings.checks
        try:
            if kind == FRAME_KIND:
                return _Decoded(m, decode_events(m.payload, checks))
            if kind in TRACK_KINDS:
                return _Decoded(m, [], decode_track_events(m.payload, checks))
        except (InvalidEventsError, MalformedBodyError) as exc:
            self._drop(m, "malformed", str(exc))
            return None
        self._drop(m, "unknown_kind", f"no store holds events of kind {kind!r}")
        return None

    def _kind(self, topic: str) -> str | None:
        head = self.prefix + "/"
        if not topic.startswith(head):
            return None
        parts = topic[len(head) :].split("/")
        if len(parts) != 3 or parts[1] != "events" or not parts[0] or not parts[2]:
            return None
        return parts[2]

    def _store(self, good: list[_Decoded], stop: threading.Event) -> bool:
        """Store the batch in one transaction (split to find an event the database refuses);
        wait out an outage. False: stopped before it was stored."""
        while True:
            try:
                self._insert(good)
                self._store_backoff.reset()
                return True
            except StoreUnavailableError as exc:
                self.figures.store_retries_total += 1
                delay = self._store_backoff.next()
                self.log.warn(
                    "ingest.store_unavailable",
                    f"{scrub(str(exc))}; {len(good)} message(s) held (not acked), retry in "
                    f"{delay:.1f}s",
                    retry_in_sec=round(delay, 3),
                )
                if stop.wait(delay):
                    return False
            except StoreError as exc:
                if len(good) == 1:
                    self._drop(good[0].message, "rejected", f"the database refused it: {exc}")
                    return True
                half = len(good) // 2
                return self._store(good[:half], stop) and self._store(good[half:], stop)

    def _insert(self, good: list[_Decoded]) -> None:
        events = [ev for d in good for ev in d.events]
        tracks = [ev for d in good for ev in d.track_events]
        t0 = time.perf_counter()
        stored = duplicates = 0
        try:
            results = [
                *([self.store.insert(events)] if events else []),
                *([self.store.insert_track_events(tracks)] if tracks else []),
            ]
            stored = sum(r.stored for r in results)
            duplicates = sum(r.duplicates for r in results)
        finally:
            self.figures.store_sec += time.perf_counter() - t0
        now = datetime.now(UTC)
        f = self.figures
        f.batches_total += 1
        f.events_total += len(events) + len(tracks)
        f.stored_total += stored
        f.duplicates_total += duplicates
        for ev in events:
            f.delay_ms.add((now - ev.ts_utc).total_seconds() * 1000.0)

    def _drop(self, m: _Message, what: str, why: str) -> None:
        f = self.figures
        setattr(f, f"{what}_total", getattr(f, f"{what}_total") + 1)
        self._dropped_unlogged += 1
        now = time.monotonic()
        if now - self._last_drop_log < _DROP_LOG_EVERY_SEC:
            return
        self.log.warn(
            f"ingest.{what}",
            f"dropped a message on {m.topic[:200]} ({scrub(why)[:300]})"
            + (
                f" and {self._dropped_unlogged - 1} more since the last line"
                if self._dropped_unlogged > 1
                else ""
            )
            + f"; {f.malformed_total} malformed, {f.unknown_kind_total} unknown kind, "
            f"{f.rejected_total} rejected so far",
            topic=m.topic[:200],
        )
        self._dropped_unlogged = 0
        self._last_drop_log = now

    def _progress(self, event: str, elapsed: float) -> None:
        snap = self.figures.as_dict()
        rate = snap["stored_total"] / elapsed if elapsed > 0 else 0.0
        self.log.info(
            event,
            f"{snap['messages_total']} messages, {snap['stored_total']} events stored "
            f"({rate:.0f}/s), {snap['duplicates_total']} duplicates, "
            f"{snap['malformed_total'] + snap['unknown_kind_total'] + snap['rejected_total']} "
            f"dropped; delay p50 {snap['delay_ms_p50']} ms, p99 {snap['delay_ms_p99']} ms",
            elapsed_sec=round(elapsed, 3),
            **snap,
        )
