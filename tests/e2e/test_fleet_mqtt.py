"""A fleet over MQTT, with the failures it must survive: devices (the real StatsRecorder,
outbox and MqttPublisher, in their own processes) -> a Mosquitto of the test's own ->
`vision-stats ingest-mqtt` workers -> the store.

Every test ends with each event in the store exactly once."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path

import msgspec
import pytest

from tests.fixtures.mqtt import Broker, TcpProxy, observe, start_ingest, stop_observer
from tests.fixtures.waiting import wait_for
from vision_core.types import StatsEvent

ROOT = Path(__file__).resolve().parents[2]


def _device(
    tmp_path: Path, port: int, prefix: str, name: str, count: int, rate: float
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.fixtures.mqtt_device", "--port", str(port),
         "--prefix", prefix, "--device", name, "--outbox", str(tmp_path / f"{name}.db"),
         "--count", str(count), "--rate", str(rate), "--batch-size", "20"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _finish(device: subprocess.Popen[str], timeout: float = 120) -> dict[str, object]:
    out, err = device.communicate(timeout=timeout)
    assert device.returncode == 0, out + err[-4000:]
    closed: dict[str, object] = json.loads(out.strip().splitlines()[-1])
    assert closed["pending"] == 0
    return closed


def _rows(db: Path) -> list[tuple[str, str, int]]:
    """(event_id, source_id, frame_index) in the order they were stored."""
    if not db.exists():
        return []
    conn = sqlite3.connect(db, timeout=30)
    try:
        sql = "SELECT event_id, source_id, frame_index FROM events ORDER BY rowid"
        return [(str(a), str(b), int(c)) for a, b, c in conn.execute(sql)]
    except sqlite3.OperationalError:  # not created yet
        return []
    finally:
        conn.close()


def _exactly_once(db: Path, devices: dict[str, int]) -> None:
    rows = _rows(db)
    assert len({r[0] for r in rows}) == len(rows)
    per_device = Counter(r[1] for r in rows)
    assert dict(per_device) == devices
    for name, count in devices.items():
        assert sorted(r[2] for r in rows if r[1] == name) == list(range(count))


def test_broker_restarted_mid_run_every_event_is_stored_exactly_once(
    tmp_path: Path, private_broker: Broker, topic_prefix: str
) -> None:
    db = tmp_path / "stats.db"
    ingest = start_ingest(tmp_path / "ingest", private_broker, topic_prefix, str(db), "w1")
    try:
        devices = {
            name: _device(tmp_path, private_broker.port, topic_prefix, name, 400, 200)
            for name in ("cam-a", "cam-b")
        }
        wait_for(lambda: len(_rows(db)) >= 150, 60, "the first events stored")
        private_broker.restart()  # SIGTERM (the broker saves its sessions), start again
        for device in devices.values():
            _finish(device)
        wait_for(lambda: len(_rows(db)) >= 800, 60, "every event stored")
        assert ingest.stop() == 0
    finally:
        ingest.stop(signal.SIGKILL)
    _exactly_once(db, {"cam-a": 400, "cam-b": 400})
    assert private_broker.starts == 2
    assert "session resumed" in ingest.output()  # the broker kept the worker's session


def test_ingest_sigkilled_mid_run_and_restarted_stores_every_event_exactly_once(
    tmp_path: Path, private_broker: Broker, topic_prefix: str
) -> None:
    db = tmp_path / "stats.db"
    ingest = start_ingest(
        tmp_path / "ingest", private_broker, topic_prefix, str(db), "w1",
        "stats.mqtt.max_batch_wait_ms=200",  # a batch in hand when the kill comes
    )  # fmt: skip
    try:
        device = _device(tmp_path, private_broker.port, topic_prefix, "cam-k", 700, 300)
        wait_for(lambda: len(_rows(db)) >= 200, 60, "the first events stored")
        ingest.proc.send_signal(signal.SIGKILL)
        ingest.proc.wait(10)
        stored_at_kill = len(_rows(db))
        ingest.restart()  # the same client id: its session holds what was not acked
        _finish(device)
        wait_for(lambda: len(_rows(db)) >= 700, 60, "every event stored")
        assert ingest.stop() == 0
    finally:
        ingest.stop(signal.SIGKILL)
    assert stored_at_kill < 700
    _exactly_once(db, {"cam-k": 700})


def test_a_device_offline_for_a_while_is_marked_offline_and_delivers_its_backlog_in_order(
    tmp_path: Path, private_broker: Broker, topic_prefix: str
) -> None:
    db = tmp_path / "stats.db"
    link = TcpProxy(private_broker.port)  # the device's network, which we cut
    ingest = start_ingest(tmp_path / "ingest", private_broker, topic_prefix, str(db), "w1")
    obs, client = observe(private_broker, f"{topic_prefix}/cam-o/#")
    try:
        device = _device(tmp_path, link.port, topic_prefix, "cam-o", 300, 100)
        wait_for(lambda: len(_rows(db)) >= 60, 60, "the first events stored")
        link.cut()
        wait_for(lambda: obs.payloads("/status")[-1:] == [b"offline"], 20, "the last will")
        stored_while_offline = len(_rows(db))
        wait_for(lambda: len(_rows(db)) == stored_while_offline, 5, "nothing more while cut")
        with sqlite3.connect(tmp_path / "cam-o.db") as outbox:  # the backlog grows on disk
            wait_for(
                lambda: outbox.execute("SELECT COUNT(*) FROM events").fetchone()[0] >= 60,
                30,
                "a backlog of 60 events",
            )
        link.restore()
        wait_for(lambda: obs.payloads("/status")[-1:] == [b"online"], 30, "back online")
        _finish(device)
        wait_for(lambda: len(_rows(db)) >= 300, 60, "the backlog stored")
        assert ingest.stop() == 0
    finally:
        ingest.stop(signal.SIGKILL)
        stop_observer(client)
        link.close()
    _exactly_once(db, {"cam-o": 300})
    frames: list[int] = []
    for payload in obs.payloads("/events/frame"):
        frames += [e.frame_index for e in msgspec.json.decode(payload, type=list[StatsEvent])]
    first_seen = list(dict.fromkeys(frames))  # a re-send after the cut may repeat a message
    assert first_seen == list(range(300))  # delivered in the order of capture
    statuses = obs.payloads("/status")
    assert statuses[-1] == b"offline"  # the device's own goodbye at its clean stop
    assert b"offline" in statuses[:-1] and statuses.count(b"online") >= 2


@pytest.mark.slow
def test_small_fleet_into_two_ingest_workers_on_postgresql_loses_and_repeats_nothing(
    tmp_path: Path, private_broker: Broker
) -> None:
    """benchmarks/bench_fleet.py, small: 100 devices for 3 s into 2 workers."""
    from benchmarks.bench_fleet import FleetConfig, run_fleet

    report = run_fleet(
        FleetConfig(devices=100, seconds=3.0, events_per_sec=5.0, simulators=1, workers=2),
        broker=private_broker,
        workdir=tmp_path,
    )
    assert report.published > 1000
    assert report.stored == report.published and report.distinct == report.published
    assert report.gaps == 0 and report.missing_devices == 0
