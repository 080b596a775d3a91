"""`MqttIngest`: the shared subscription into the store, on SQLite and PostgreSQL, with a
real broker (the shared Mosquitto, a fresh topic prefix per test)."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import msgspec
import paho.mqtt.client as mqtt
import pytest

from tests.fixtures.mqtt import Broker
from tests.fixtures.waiting import wait_for
from vision_core.config import PipelineConfig
from vision_core.config.schema import MqttIngest as MqttIngestSection
from vision_core.config.schema import StatsSection
from vision_core.errors import ConfigError
from vision_core.logging import StructuredLogger, read_jsonl
from vision_core.types import StatsEvent
from vision_stats.ingest_mqtt import IngestSettings, MqttIngest, subscription
from vision_stats.store import StatsStore

EventFactory = Callable[..., StatsEvent]
_enc = msgspec.json.Encoder()


def _settings(broker: Broker, prefix: str, client_id: str, **kw: object) -> IngestSettings:
    options: dict[str, object] = {"session_expiry_sec": 30, "max_batch_wait_ms": 20.0, **kw}
    section = MqttIngestSection(
        host=broker.host,
        port=broker.port,
        topic_prefix=prefix,
        **options,  # type: ignore[arg-type]
    )
    cfg = PipelineConfig(stats=StatsSection(mqtt=section))
    return IngestSettings.from_config(cfg, db="unused", client_id=client_id, environ={})


@contextmanager
def _running(ingest: MqttIngest) -> Iterator[threading.Event]:
    stop = threading.Event()
    thread = threading.Thread(target=ingest.run, args=(stop,))
    thread.start()
    try:
        wait_for(lambda: ingest.figures.connects_total >= 1, 15, "the ingest connected")
        yield stop
    finally:
        stop.set()
        thread.join(30)
        assert not thread.is_alive()


@contextmanager
def _publisher(broker: Broker) -> Iterator[mqtt.Client]:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        yield client
    finally:
        client.disconnect()
        client.loop_stop()


def _publish(client: mqtt.Client, topic: str, payload: bytes) -> None:
    info = client.publish(topic, payload, qos=1)
    info.wait_for_publish(10)
    assert info.is_published()


def _ids(store: StatsStore) -> list[str]:
    return sorted(ev.event_id for ev in store.recent(10_000))


def test_batches_and_single_events_are_stored_once_and_repeats_count_as_duplicates(
    store: StatsStore, mqtt_broker: Broker, topic_prefix: str, make_event: EventFactory
) -> None:
    settings = _settings(mqtt_broker, topic_prefix, f"{topic_prefix}-w1")
    ingest = MqttIngest(store, settings)
    batches = [[make_event(i * 10 + j) for j in range(10)] for i in range(20)]
    with _running(ingest), _publisher(mqtt_broker) as pub:
        for batch in batches:
            _publish(pub, f"{topic_prefix}/cam-01/events/frame", _enc.encode(batch))
        _publish(pub, f"{topic_prefix}/cam-01/events/frame", _enc.encode(make_event(500)))
        _publish(pub, f"{topic_prefix}/cam-01/events/frame", _enc.encode(batches[3]))  # again
        wait_for(lambda: ingest.figures.messages_total == 22, 20, "22 messages")
    f = ingest.figures
    assert (f.stored_total, f.duplicates_total, f.malformed_total) == (201, 10, 0)
    assert _ids(store) == sorted([ev.event_id for b in batches for ev in b] + ["cam-01-000500"])
    assert store.overview().events_total == 201
    assert f.delay_ms.count == 211 and f.as_dict()["delay_ms_p50"] is not None


def test_bad_messages_are_counted_dropped_and_logged_and_the_consumer_goes_on(
    tmp_path: Path,
    store: StatsStore,
    mqtt_broker: Broker,
    topic_prefix: str,
    make_event: EventFactory,
) -> None:
    log_path = tmp_path / "ingest.jsonl"
    ingest = MqttIngest(
        store,
        _settings(mqtt_broker, topic_prefix, f"{topic_prefix}-w1"),
        logger=StructuredLogger(log_path),
    )
    frame = f"{topic_prefix}/cam-01/events/frame"
    bad = [
        (frame, b"{not json"),
        (frame, b'[{"event_id": "x"}]'),  # missing fields
        (frame, b"[]"),
        (f"{topic_prefix}/cam-01/events/crossing", _enc.encode([make_event(1)])),  # wrong kind
        (f"{topic_prefix}/cam-01/events/heatmap", _enc.encode([make_event(2)])),  # no such kind
    ]
    with _running(ingest), _publisher(mqtt_broker) as pub:
        for topic, payload in bad:
            _publish(pub, topic, payload)
        _publish(pub, frame, _enc.encode([make_event(i) for i in range(5)]))
        wait_for(lambda: ingest.figures.stored_total == 5, 20, "the good batch")
    f = ingest.figures
    assert (f.malformed_total, f.unknown_kind_total, f.stored_total) == (4, 1, 5)
    lines = [r for r in read_jsonl(log_path) if r["event"].startswith("ingest.")]
    malformed = [r for r in lines if r["event"] == "ingest.malformed"]
    assert malformed and "not valid JSON" in malformed[0]["message"]
    summary = next(r for r in lines if r["event"] == "ingest.summary")
    assert summary["malformed_total"] == 4 and summary["unknown_kind_total"] == 1


def test_two_workers_of_a_group_split_the_stream_and_store_each_event_once(
    store: StatsStore, mqtt_broker: Broker, topic_prefix: str, make_event: EventFactory
) -> None:
    one = MqttIngest(store, _settings(mqtt_broker, topic_prefix, f"{topic_prefix}-a"))
    two = MqttIngest(store, _settings(mqtt_broker, topic_prefix, f"{topic_prefix}-b"))
    events = [make_event(i, source=f"cam-{i % 7}") for i in range(600)]
    with _running(one), _running(two), _publisher(mqtt_broker) as pub:
        for i in range(0, 600, 5):
            topic = f"{topic_prefix}/dev-{i % 3}/events/frame"
            _publish(pub, topic, _enc.encode(events[i : i + 5]))
        wait_for(lambda: one.figures.messages_total + two.figures.messages_total == 120, 20, "all")
    assert one.figures.messages_total > 10 and two.figures.messages_total > 10
    assert one.figures.stored_total + two.figures.stored_total == 600
    assert _ids(store) == sorted(ev.event_id for ev in events)


def test_a_poison_event_is_dropped_alone_and_its_batch_is_stored(
    pg_dsn: str, mqtt_broker: Broker, topic_prefix: str, make_event: EventFactory
) -> None:
    """A NUL in a text column (PostgreSQL cannot store one; the wire bounds refuse control
    characters before it gets there): that message is dropped and counted, the messages
    that came in the same batch are stored."""
    from vision_stats.store import open_store

    store = open_store(pg_dsn)
    poison = make_event(99)
    poison.model = "bad\x00model"
    ingest = MqttIngest(
        store, _settings(mqtt_broker, topic_prefix, f"{topic_prefix}-w", max_batch_wait_ms=300.0)
    )
    try:
        with _running(ingest), _publisher(mqtt_broker) as pub:
            topic = f"{topic_prefix}/cam-01/events/frame"
            for i in range(4):
                _publish(pub, topic, _enc.encode([make_event(i * 2), make_event(i * 2 + 1)]))
            _publish(pub, topic, _enc.encode([poison]))
            wait_for(lambda: ingest.figures.messages_total == 5, 20, "5 messages")
        f = ingest.figures
        assert f.malformed_total + f.rejected_total == 1 and f.stored_total == 8
        assert len(_ids(store)) == 8
    finally:
        store.close()


@pytest.mark.parametrize(
    ("group", "prefix", "client_id", "error"),
    [
        ("a/b", "vision", "w1", "stats.mqtt.group"),
        ("g", "vision/+", "w1", "stats.mqtt.topic_prefix"),
        ("g", "$SYS", "w1", "stats.mqtt.topic_prefix"),
    ],
)
def test_bad_ingest_settings_name_the_key(
    group: str, prefix: str, client_id: str, error: str
) -> None:
    cfg = PipelineConfig(stats=StatsSection(mqtt=MqttIngestSection(topic_prefix=prefix)))
    with pytest.raises(ConfigError, match=error):
        IngestSettings.from_config(cfg, group=group, client_id=client_id, environ={})


def test_the_command_refuses_a_bad_group_with_exit_2_naming_the_key(tmp_path: Path) -> None:
    exe = Path(sys.executable).parent / "vision-stats"
    res = subprocess.run(
        [str(exe), "ingest-mqtt", "--db", str(tmp_path / "s.db"), "--group", "a/b",
         "--set", f"run.workdir={tmp_path}"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert res.returncode == 2
    assert "stats.mqtt.group: 'a/b' cannot be an MQTT topic level" in res.stderr


def test_the_subscription_is_shared_by_the_group() -> None:
    assert subscription("ingest", "fleet/eu") == "$share/ingest/fleet/eu/+/events/#"


def test_tracking_events_are_stored_and_checked_like_the_http_ones(
    store: StatsStore, mqtt_broker: Broker, topic_prefix: str
) -> None:
    """Crossings, zone events and summaries published by a device are stored (idempotent,
    as over HTTP); a body the HTTP API would refuse (a time far outside the window) is
    dropped as malformed, never stored, and the consumer goes on."""
    from datetime import UTC, datetime, timedelta

    from vision_core.types import CrossingEvent, IntervalSummary, ZoneEvent

    now = datetime.now(UTC)
    crossings = [
        CrossingEvent(event_id=f"x-{i}", ts_utc=now, source_id="cam-01", line="gate",
                      direction="in" if i % 3 else "out", class_name="car", track_id=i)
        for i in range(6)
    ]  # fmt: skip
    zone = ZoneEvent(event_id="z-1", ts_utc=now, source_id="cam-01", zone="dock",
                     action="enter", class_name="car", track_id=1, occupancy=1)  # fmt: skip
    summary = IntervalSummary(event_id="s-1", start_utc=now - timedelta(seconds=60),
                              end_utc=now, source_id="cam-01", frames=900,
                              detections_by_class={"car": 40})  # fmt: skip
    stale = CrossingEvent(event_id="x-old", ts_utc=datetime(1990, 1, 1, tzinfo=UTC),
                          source_id="cam-01", line="gate", direction="in",
                          class_name="car", track_id=99)  # fmt: skip
    ingest = MqttIngest(store, _settings(mqtt_broker, topic_prefix, f"{topic_prefix}-t"))
    base = f"{topic_prefix}/cam-01/events"
    with _running(ingest), _publisher(mqtt_broker) as pub:
        _publish(pub, f"{base}/crossing", _enc.encode(crossings))
        _publish(pub, f"{base}/zone", _enc.encode([zone]))
        _publish(pub, f"{base}/summary", _enc.encode([summary]))
        _publish(pub, f"{base}/crossing", _enc.encode(crossings[:2]))  # a re-delivery
        _publish(pub, f"{base}/crossing", _enc.encode([stale]))
        wait_for(lambda: ingest.figures.messages_total == 5, 20, "5 messages")
    f = ingest.figures
    assert (f.stored_total, f.duplicates_total, f.malformed_total) == (8, 2, 1)
    totals = {(t.line, t.class_name): (t.in_, t.out) for t in store.track_counts().totals}
    assert totals == {("gate", "car"): (4, 2)}
