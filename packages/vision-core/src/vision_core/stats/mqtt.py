"""The MQTT publisher: outbox -> an MQTT broker, QoS 1, one message per batch, in order.

`MqttPublisher` has the HTTP sender's interface (`start`, `notify`, `flush`, `close`,
`snapshot`), so `StatsRecorder` runs it in place of the sender (`deploy.stats.transport =
"mqtt"`) or beside it (`"both"`, on a second outbox). The outbox stays the source of truth:
an event leaves it only when the broker has acknowledged the message that carries it
(PUBACK, or PUBCOMP at QoS 2) with a success code.

Topics (`deploy.stats.mqtt.topic_prefix`, default `vision`):

- `<prefix>/<device_id>/events/<kind>`: the events, `kind` as in the outbox (`frame` for a
  StatsEvent; the tracking events bring theirs). The payload is what the HTTP sender POSTs:
  a JSON array of up to `deploy.stats.batch_size` events of that kind (the ingest also
  takes a single JSON object).
- `<prefix>/<device_id>/status`: `online` (published, retained, on every connect) or
  `offline` (retained; published on a clean stop, and by the broker as the last will when
  the link dies without one).

Delivery:

- One thread per publisher runs the link (`vision_core.net.mqtt.BrokerLink`, MQTT 5) and
  publishes up to `max_inflight` messages ahead of the broker's acks, the oldest events
  first, each of one kind (`vision_core.stats.delivery`: interleaved kinds still go in full
  batches); a batch that is not full waits up to `linger_sec` for more frames.
- A lost link: paho re-sends the messages awaiting their ack after the reconnect (DUP),
  in order; the reconnect waits with the shared jittered backoff. A restarted process
  re-sends what its outbox still holds. Repeats are harmless: the ingest keeps one row per
  event_id.
- A refusal in the PUBACK (MQTT 5 reason codes) keeps the events: "no matching
  subscribers" (no ingest worker has ever subscribed: the broker would drop the message),
  "not authorized" (the broker's ACL) and the rest back off and re-send from the oldest
  refused event. "Packet too large" / "payload format invalid" isolate the culprit like
  the HTTP sender's 413/422: the batch is halved, a single event still refused goes to
  the outbox's dead letters (`vision-edge dead-letters`).
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from vision_core.errors import ConfigError
from vision_core.logging import StructuredLogger
from vision_core.net.mqtt import BrokerLink, ReasonCode, check_topic_level, check_topic_prefix
from vision_core.secrets import Secret, scrub
from vision_core.stats.delivery import PEEK_BATCHES, OutboxDelivery, one_kind
from vision_core.stats.outbox import Outbox, OutboxError, OutboxItem, payloads_as_array

if TYPE_CHECKING:
    from vision_core.config.schema import MqttPublish

__all__ = ["STATUS_OFFLINE", "STATUS_ONLINE", "MqttPublisher", "events_topic", "status_topic"]

STATUS_ONLINE = b"online"
STATUS_OFFLINE = b"offline"
NO_MATCHING_SUBSCRIBERS = 0x10  # MQTT 5 PUBACK: a success code, but nobody got the message
_POISON = {0x95, 0x99}  # packet too large, payload format invalid


def events_topic(prefix: str, device_id: str, kind: str) -> str:
    return f"{prefix}/{device_id}/events/{kind}"


def status_topic(prefix: str, device_id: str) -> str:
    return f"{prefix}/{device_id}/status"


@dataclass(slots=True)
class _Flight:
    """A published message awaiting the broker's ack."""

    items: list[OutboxItem]
    topic: str


class MqttPublisher(OutboxDelivery):
    """Publishes an outbox's events to an MQTT broker (see the module docstring)."""

    def __init__(
        self,
        outbox: Outbox,
        section: MqttPublish,
        *,
        device_id: str,
        password: Secret | str = "",
        batch_size: int = 100,
        max_backoff_sec: float = 30.0,
        base_backoff_sec: float = 0.5,
        linger_sec: float = 0.2,
        idle_poll_sec: float = 2.0,
        logger: StructuredLogger | None = None,
        rng: random.Random | None = None,
        name: str = "stats-mqtt",
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        check_topic_level(device_id, "the device id of deploy.stats.mqtt topics")
        self.prefix = check_topic_prefix(section.topic_prefix, "deploy.stats.mqtt.topic_prefix")
        client_id = section.client_id.replace("{device_id}", device_id)
        if not client_id:
            raise ConfigError("deploy.stats.mqtt.client_id: empty")
        super().__init__(
            outbox,
            base_backoff_sec=base_backoff_sec,
            max_backoff_sec=max_backoff_sec,
            logger=logger,
            rng=rng,
            name=name,
        )
        self.section = section
        self.device_id = device_id
        self.qos = section.qos
        self.max_inflight = section.max_inflight
        self.batch_size = batch_size
        self.linger_sec = linger_sec
        self.idle_poll_sec = idle_poll_sec
        self.status_topic = status_topic(self.prefix, device_id)
        self.link = BrokerLink(
            section,
            key_path="deploy.stats.mqtt",
            client_id=client_id,
            password=password,
            clean_start=True,
            max_inflight=section.max_inflight + 2,  # + the status messages
            will=(self.status_topic, STATUS_OFFLINE, self.qos),
            max_backoff_sec=max_backoff_sec,
            base_backoff_sec=base_backoff_sec,
            logger=self.log,
            rng=rng,
            on_up=self._up,
            on_down=self._down,
        )
        self.link.client.on_publish = self._acked
        self.endpoint = f"{self.link.url}/{self.prefix}/{device_id}/events"
        self._stop = threading.Event()
        self._flushing = False
        self._inflight: dict[int, _Flight] = {}  # mid -> message
        self._inflight_ids: set[int] = set()  # outbox row ids of those messages
        self._cursor = 0  # outbox rows up to this id are published (in flight or acked)
        self._limit = batch_size  # shrinks while a refused batch is being isolated
        self._partial_since: float | None = None
        self._hold_until = 0.0  # backing off after a refused message
        self.sent_total = 0  # events acknowledged by the broker (and acked in the outbox)
        self.batches_total = 0  # messages acknowledged
        self.refused_total = 0  # messages the broker refused (reason code)

    # -- what callers use (the StatsSender's interface) -----------------------------------

    @property
    def connected(self) -> bool:
        return self.link.connected

    def notify(self) -> None:
        """New events are in the outbox: publish soon (never blocks, never raises)."""
        self.link.wake()

    def _hurry(self) -> None:  # no lingering, one immediate reconnect or resend try
        self._flushing = True

        def now_please() -> None:
            self._hold_until = 0.0
            self.link.retry_now()

        self.link.call_soon(now_please)

    def _shutdown(self) -> None:  # the thread publishes `offline` and disconnects
        self._stop.set()
        self.link.wake()
        if self._thread is not None:  # a connect in progress may hold it (connect timeout)
            self._thread.join(timeout=6.0)
        else:
            self.link.close()

    def snapshot(self) -> dict[str, Any]:
        """Counters for /metrics and health pages."""
        return {
            "transport": "mqtt",
            "broker": self.link.url,
            "topic": events_topic(self.prefix, self.device_id, "<kind>"),
            "connected": self.link.connected,
            "sent_total": self.sent_total,
            "batches_total": self.batches_total,
            "failures_total": self.failures_total,
            "refused_total": self.refused_total,
            "dead_letters_total": self.dead_letters_total,
            "inflight_messages": len(self._inflight),
            "consecutive_failures": max(self._backoff.attempts, self.link.consecutive_failures),
            "last_error": self.outbox.last_error,
        }

    # -- the thread -----------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    timeout = self._pump()
                except Exception as exc:  # the publisher must outlive any surprise
                    self._fail(f"publisher error: {type(exc).__name__}: {exc}")
                    timeout = 1.0
                self.link.run_once(timeout)
        finally:
            self._goodbye()

    def _pump(self) -> float:
        """Publish what the window allows; returns how long the link may wait."""
        if not self.link.connected:
            return self.idle_poll_sec
        now = time.monotonic()
        if now < self._hold_until:
            return self._hold_until - now
        while len(self._inflight) < self.max_inflight:
            items, backlog = self._next_batch()
            if not items:
                self._partial_since = None
                return self.idle_poll_sec
            if (
                not backlog
                and len(items) < self._limit
                and self.linger_sec > 0
                and not self._flushing
            ):
                if self._partial_since is None:
                    self._partial_since = now
                wait = self._partial_since + self.linger_sec - now
                if wait > 0:  # let a few more frames join
                    return wait
            self._partial_since = None
            if not self._publish(items):
                return max(0.0, self._hold_until - time.monotonic())
        return self.idle_poll_sec  # the window is full: an ack wakes the link

    def _next_batch(self) -> tuple[list[OutboxItem], bool]:
        """The next events to publish (`delivery.one_kind` of the oldest events not yet
        published), and whether a full window of them waits (lingering would not help)."""
        window = self._limit * PEEK_BATCHES
        try:
            rows = self.outbox.peek(window + len(self._inflight_ids), after=self._cursor)
        except OutboxError as exc:
            self._fail(str(exc))
            return [], False
        for it in rows:  # the leading rows in flight: the next peek starts after them
            if it.id not in self._inflight_ids:
                break
            self._cursor = it.id
        fresh = [it for it in rows if it.id not in self._inflight_ids]
        return one_kind(fresh, self._limit), len(fresh) >= window

    def _publish(self, items: list[OutboxItem]) -> bool:
        topic = events_topic(self.prefix, self.device_id, items[0].kind)
        try:
            info = self.link.client.publish(topic, payloads_as_array(items), qos=self.qos)
        except ValueError as exc:  # paho refuses a payload above the MQTT limit
            self._rejected(_Flight(items, topic), 0x95, str(exc))
            return False
        if info.rc not in (0, 4):  # success, or no connection (paho re-sends it)
            self._fail(f"cannot publish to {topic}: paho error {info.rc}")
            return False
        self._inflight[info.mid] = _Flight(items, topic)
        self._inflight_ids.update(it.id for it in items)
        return True

    def _acked(
        self,
        _client: object,
        _userdata: object,
        mid: int,
        reason: ReasonCode,
        _props: object,
    ) -> None:
        flight = self._inflight.pop(mid, None)
        if flight is None:  # a status message
            return
        self._inflight_ids.difference_update(it.id for it in flight.items)
        if reason.is_failure or reason.value == NO_MATCHING_SUBSCRIBERS:
            self._rejected(flight, reason.value, str(reason))
            return
        with self._settling:
            try:
                self.outbox.ack(it.id for it in flight.items)
            except OutboxError as exc:  # sent, not forgotten: it goes again (ingest dedups)
                self._rewind(flight)
                self._fail(str(exc))
                return
            self.sent_total += len(flight.items)
            self.batches_total += 1
            self._limit = min(self.batch_size, self._limit * 2)
            self._recovered()
            self.outbox.set_last_error(None)
        if not self._inflight and self._flushing and self.outbox.pending() == 0:
            self._flushing = False

    def _rewind(self, flight: _Flight) -> None:
        """Publish these events again (after any backoff), from the oldest of them."""
        self._cursor = min(self._cursor, flight.items[0].id - 1)

    def _rejected(self, flight: _Flight, code: int, why: str) -> None:
        self.refused_total += 1
        items = flight.items
        if code in _POISON:
            if len(items) > 1:  # isolate the culprit: halve, resend at once
                self._limit = max(1, len(items) // 2)
                self._rewind(flight)
                return
            self._bury(items[0], f"the broker refused the message ({why})")
            return
        self._rewind(flight)
        if time.monotonic() < self._hold_until:  # the messages behind the first refusal
            return
        if code == NO_MATCHING_SUBSCRIBERS:
            what = (
                f"nobody is subscribed to {flight.topic} (start a `vision-stats ingest-mqtt` "
                "worker: its persistent session keeps the events while it is down)"
            )
        elif code == 0x87:
            what = (
                f"the broker does not let {self.link.client_id} publish on {flight.topic} "
                "(Not authorized): check its ACL and deploy.stats.mqtt.username"
            )
        else:
            what = f"the broker refused a message on {flight.topic} ({why})"
        delay = self._fail(what)
        self._hold_until = max(self._hold_until, time.monotonic() + delay)

    def _bury(self, item: OutboxItem, reason: str) -> None:
        self._limit = self.batch_size
        self._set_aside(item, 0, reason, f"{self.link.url} refused event {item.event_id}: {reason}")

    def _up(self, _session_present: bool) -> None:
        self.link.client.publish(self.status_topic, STATUS_ONLINE, qos=self.qos, retain=True)
        self.log.info(
            "stats.mqtt_connected",
            f"publishing stats to {self.endpoint}/<kind> ({self.outbox.pending()} pending, "
            f"{len(self._inflight)} message(s) to re-send)",
            broker=self.link.url,
        )

    def _down(self, message: str) -> None:
        self.failures_total += 1
        with contextlib.suppress(OutboxError):
            self.outbox.set_last_error(scrub(message))

    def _goodbye(self) -> None:
        """On close: `offline` (retained) while the link is up, then DISCONNECT."""
        try:
            if self.link.connected:
                info = self.link.client.publish(
                    self.status_topic, STATUS_OFFLINE, qos=self.qos, retain=True
                )
                deadline = time.monotonic() + 1.0
                while not info.is_published() and self.link.connected:
                    if time.monotonic() >= deadline:
                        break
                    self.link.run_once(0.05)
        finally:
            self.link.close()
