"""The MQTT publisher of the stats outbox, against real Mosquitto brokers.

The shared broker (127.0.0.1:1883, a fresh topic prefix per test) for the delivery path;
a broker of the test's own for what needs it stopped or absent.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import msgspec
import pytest

from tests.fixtures.fake_stats import FakeStats
from tests.fixtures.mqtt import Broker, observe, observe_as, stop_observer
from tests.fixtures.services import STATS_KEY, free_port
from tests.fixtures.waiting import wait_for
from vision_core.config.schema import MqttPublish, StatsSink
from vision_core.errors import ConfigError
from vision_core.logging import StructuredLogger, read_jsonl
from vision_core.stats import Outbox, StatsRecorder
from vision_core.stats.mqtt import MqttPublisher
from vision_core.stats.outbox import Event
from vision_core.types import StatsEvent, make_stats_event

ROOT = Path(__file__).resolve().parents[3]


def _event(i: int, device: str = "dev-1") -> StatsEvent:
    return make_stats_event(
        source_id=device, mode="local", frame_index=i, latency_ms=1.0, detections=[]
    )


def _sink(broker: Broker, prefix: str, **kw: object) -> StatsSink:
    mqtt = MqttPublish(host=broker.host, port=broker.port, topic_prefix=prefix, keepalive_sec=5)
    return replace(StatsSink(transport="mqtt", max_backoff_sec=1.0, mqtt=mqtt), **kw)  # type: ignore[arg-type]


def _frames(payloads: list[bytes]) -> list[int]:
    out: list[int] = []
    for p in payloads:
        out += [ev.frame_index for ev in msgspec.json.decode(p, type=list[StatsEvent])]
    return out


def test_events_go_as_json_arrays_on_the_kind_topic_and_leave_the_outbox_on_puback(
    tmp_path: Path, mqtt_broker: Broker, topic_prefix: str
) -> None:
    obs, client = observe(mqtt_broker, f"{topic_prefix}/#")
    try:
        rec = StatsRecorder.open(
            tmp_path / "ob.db", _sink(mqtt_broker, topic_prefix), device_id="dev-1"
        )
        for start in range(0, 250, 10):
            assert rec.record([_event(i) for i in range(start, start + 10)]) == 10
        assert rec.close(30.0) is True
        snap = rec.snapshot()
        wait_for(lambda: len(_frames(obs.payloads("/dev-1/events/frame"))) >= 250, 10, "events")
        events = obs.payloads("/dev-1/events/frame")
    finally:
        stop_observer(client)
    assert _frames(events) == list(range(250))  # each once, in order of capture
    assert all(len(msgspec.json.decode(p)) <= 100 for p in events)  # deploy.stats.batch_size
    assert snap["pending"] == 0 and snap["sent_total"] == 250
    assert snap["endpoint"] == f"mqtt://127.0.0.1:1883/{topic_prefix}/dev-1/events/<kind>"
    with Outbox(tmp_path / "ob.db") as outbox:
        assert outbox.pending() == 0


def test_interleaved_kinds_go_in_full_messages_each_once_in_order_of_capture(
    tmp_path: Path, mqtt_broker: Broker, topic_prefix: str, interleaved_kinds: list[Event]
) -> None:
    obs, client = observe(mqtt_broker, f"{topic_prefix}/#")
    try:
        sink = _sink(mqtt_broker, topic_prefix, batch_size=10)
        rec = StatsRecorder.open(tmp_path / "ob.db", sink, device_id="dev-1")
        assert rec.record(interleaved_kinds) == 81
        assert rec.close(30.0) is True
        wait_for(lambda: len(obs.payloads("/events/crossing")) >= 4, 10, "crossings")
    finally:
        stop_observer(client)
    batches = {
        kind: [[e["event_id"] for e in json.loads(p)] for p in obs.payloads(f"/events/{kind}")]
        for kind in ("frame", "crossing", "zone")
    }
    assert [len(b) for b in batches["frame"]] == [10, 10, 10, 10]  # not 40 messages of one
    assert [len(b) for b in batches["crossing"]] == [10, 10, 10, 10]
    assert batches["zone"] == [["z-00000"]]
    assert [i for b in batches["frame"] for i in b] == [f"ev-{i:05d}" for i in range(40)]
    assert [i for b in batches["crossing"] for i in b] == [f"x-{i:05d}" for i in range(40)]
    assert rec.snapshot()["sent_total"] == 81


def test_status_is_retained_online_while_connected_and_offline_after_a_clean_close(
    tmp_path: Path, mqtt_broker: Broker, topic_prefix: str
) -> None:
    rec = StatsRecorder.open(tmp_path / "ob.db", _sink(mqtt_broker, topic_prefix), device_id="d7")
    status = f"{topic_prefix}/d7/status"
    try:
        wait_for(lambda: rec.publisher is not None and rec.publisher.connected, 10, "connect")
        obs, client = observe(mqtt_broker, status)  # a late subscriber gets the retained one
        wait_for(lambda: obs.messages, 10, "the retained status")
        assert obs.messages[0][1:] == (b"online", True)
    finally:
        rec.close(5.0)
    wait_for(lambda: obs.payloads("/status")[-1:] == [b"offline"], 10, "offline")
    stop_observer(client)


def test_the_last_will_marks_a_killed_device_offline(
    tmp_path: Path, mqtt_broker: Broker, topic_prefix: str
) -> None:
    status = f"{topic_prefix}/dead-1/status"
    obs, client = observe(mqtt_broker, status)
    device = subprocess.Popen(
        [sys.executable, "-m", "tests.fixtures.mqtt_device", "--port", str(mqtt_broker.port),
         "--prefix", topic_prefix, "--device", "dead-1", "--outbox", str(tmp_path / "ob.db"),
         "--count", "100000", "--rate", "50"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for(lambda: b"online" in obs.payloads("/status"), 30, "the device online")
        device.send_signal(signal.SIGKILL)
        device.wait(10)
        wait_for(lambda: obs.payloads("/status")[-1:] == [b"offline"], 15, "the will")
    finally:
        if device.poll() is None:
            device.kill()
            device.wait()
        stop_observer(client)


def test_events_stay_in_the_outbox_while_no_ingest_is_subscribed(
    tmp_path: Path, mqtt_broker: Broker, topic_prefix: str
) -> None:
    """MQTT 5 says "no matching subscribers" in the PUBACK: the broker would have dropped
    the message, so the events stay, and go once an ingest subscribes."""
    log_path = tmp_path / "log.jsonl"
    rec = StatsRecorder.open(
        tmp_path / "ob.db",
        _sink(mqtt_broker, topic_prefix),
        device_id="lonely",
        logger=StructuredLogger(log_path),
    )
    try:
        rec.record([_event(i, "lonely") for i in range(30)])
        wait_for(lambda: "nobody is subscribed" in str(rec.snapshot()["last_error"]), 15, "0x10")
        assert rec.pending() == 30
        obs, client = observe(mqtt_broker, f"$share/g/{topic_prefix}/+/events/#")
        assert rec.close(20.0) is True
        wait_for(lambda: len(_frames(obs.payloads("/events/frame"))) == 30, 10, "delivery")
        stop_observer(client)
    finally:
        rec.close(0)
    lines = [r for r in read_jsonl(log_path) if r["event"] == "stats.send_failed"]
    assert lines and "kept in the outbox" in lines[0]["message"]


def test_a_broker_that_comes_up_late_gets_everything_the_device_kept(
    tmp_path: Path, private_broker: Broker, topic_prefix: str
) -> None:
    private_broker.stop()
    rec = StatsRecorder.open(
        tmp_path / "ob.db", _sink(private_broker, topic_prefix), device_id="late"
    )
    try:
        rec.record([_event(i, "late") for i in range(40)])
        wait_for(lambda: rec.snapshot()["consecutive_failures"] >= 1, 15, "a failed connect")
        assert "cannot connect" in str(rec.publisher.link.last_error)  # type: ignore[union-attr]
        assert rec.pending() == 40
        private_broker.start()
        obs, client = observe(private_broker, f"{topic_prefix}/+/events/#")
        assert rec.close(30.0) is True
        wait_for(lambda: len(_frames(obs.payloads("/events/frame"))) == 40, 10, "delivery")
        assert _frames(obs.payloads("/events/frame")) == list(range(40))
        stop_observer(client)
    finally:
        rec.close(0)


def test_transport_both_delivers_every_event_over_http_and_over_mqtt(
    tmp_path: Path, mqtt_broker: Broker, topic_prefix: str, fake_stats: FakeStats
) -> None:
    obs, client = observe(mqtt_broker, f"{topic_prefix}/#")
    sink = _sink(mqtt_broker, topic_prefix, transport="both", endpoint=fake_stats.url)
    rec = StatsRecorder.open(tmp_path / "ob.db", sink, device_id="twin", api_key=STATS_KEY)
    try:
        rec.record([_event(i, "twin") for i in range(60)])
        assert rec.close(30.0) is True
        wait_for(lambda: len(_frames(obs.payloads("/events/frame"))) == 60, 10, "mqtt delivery")
    finally:
        stop_observer(client)
    assert len(fake_stats.events) == 60
    snap = rec.snapshot()
    assert snap["sent_total"] == 60 and snap["mqtt"]["sent_total"] == 60
    assert snap["mqtt"]["path"].endswith("ob.mqtt.db") and snap["mqtt"]["pending"] == 0
    assert " + mqtt://" in snap["endpoint"]


@pytest.mark.parametrize(
    ("device", "mqtt", "env", "error"),
    [
        ("a/b", {}, {}, "cannot be an MQTT topic level"),
        ("cam+1", {}, {}, "cannot be an MQTT topic level"),
        ("", {}, {}, "has no device id"),
        ("d", {"topic_prefix": "v/#"}, {}, "deploy.stats.mqtt.topic_prefix"),
        ("d", {"topic_prefix": "v//x"}, {}, "empty topic level"),
        ("d", {"tls": True, "ca_file": "/nonexistent/ca.pem"}, {}, "deploy.stats.mqtt.ca_file"),
        ("d", {"ca_file": "/etc/hostname"}, {}, "deploy.stats.mqtt.tls"),
        ("d", {}, {"VISION_MQTT_PASSWORD": "s3cret-pw"}, "deploy.stats.mqtt.username is empty"),
    ],
)
def test_bad_mqtt_settings_are_refused_naming_the_key(
    tmp_path: Path, device: str, mqtt: dict[str, object], env: dict[str, str], error: str
) -> None:
    sink = StatsSink(transport="mqtt", mqtt=replace(MqttPublish(), **mqtt))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=error.replace("+", r"\+")) as info:
        StatsRecorder.open(tmp_path / "ob.db", sink, device_id=device, environ=env)
    assert "s3cret-pw" not in str(info.value)


def test_a_wrong_password_is_logged_without_the_password_and_events_are_kept(
    tmp_path: Path, private_broker: Broker, topic_prefix: str
) -> None:
    """A broker that requires a password: a refused CONNECT names the keys to check."""
    assert private_broker.conf is not None
    passwd = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwd), "dev", "right-pw"], check=True)
    conf = private_broker.conf.read_text().replace("allow_anonymous true", "allow_anonymous false")
    private_broker.conf.write_text(conf + f"password_file {passwd}\n")
    private_broker.restart()
    log_path = tmp_path / "log.jsonl"
    sink = _sink(private_broker, topic_prefix)
    sink = replace(sink, mqtt=replace(sink.mqtt, username="dev"))
    env = {"VISION_MQTT_PASSWORD": "wrong-pw-123"}
    rec = StatsRecorder.open(
        tmp_path / "ob.db", sink, device_id="d", environ=env, logger=StructuredLogger(log_path)
    )
    try:
        rec.record(_event(1, "d"))
        wait_for(
            lambda: "refused the connection" in str(rec.snapshot()["last_error"]), 15, "refusal"
        )
    finally:
        rec.close(0)
    text = log_path.read_text()
    assert "deploy.stats.mqtt.password_env" in text and "wrong-pw-123" not in text
    assert rec.snapshot()["pending"] == 1  # kept for the next start
    obs, client = observe_as(private_broker, f"{topic_prefix}/#", "dev", "right-pw")
    rec = StatsRecorder.open(
        tmp_path / "ob.db", sink, device_id="d", environ={"VISION_MQTT_PASSWORD": "right-pw"}
    )
    assert rec.close(20.0) is True
    wait_for(lambda: _frames(obs.payloads("/events/frame")) == [1], 10, "the kept event")
    stop_observer(client)


def test_without_paho_the_mqtt_transport_says_what_to_install(tmp_path: Path) -> None:
    from tests.fixtures.blocked_imports import run_blocked

    body = f"""
from vision_core.config.schema import StatsSink
from vision_core.errors import MissingDependencyError
from vision_core.stats import StatsRecorder
try:
    StatsRecorder.open({str(tmp_path / "ob.db")!r}, StatsSink(transport="mqtt"),
                       device_id="d", mqtt_extra="vision-edge[mqtt]")
except MissingDependencyError as exc:
    RESULT["error"] = str(exc)
RESULT["http"] = StatsRecorder.open({str(tmp_path / "h.db")!r}, StatsSink(endpoint="")).close()
"""
    result, imported = run_blocked(body, blocked=("paho",), tmp_path=tmp_path, cwd=ROOT)
    assert 'pip install "vision-edge[mqtt]"' in result["error"]
    assert result["http"] is True and imported == []


def test_publisher_refuses_a_batch_size_below_one(tmp_path: Path) -> None:
    with Outbox(tmp_path / "ob.db") as outbox, pytest.raises(ValueError, match="batch_size"):
        MqttPublisher(outbox, MqttPublish(), device_id="d", batch_size=0)


def test_tls_to_a_broker_with_its_own_ca_delivers_and_a_wrong_ca_is_refused(
    tmp_path: Path, private_broker: Broker, topic_prefix: str
) -> None:
    """A TLS listener whose certificate a CA of the test signed (openssl)."""
    assert private_broker.conf is not None
    d = tmp_path / "pki"
    d.mkdir()

    def ssl_(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

    for ca in ("ca", "other-ca"):
        ssl_("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
             f"/CN={ca}", "-keyout", f"{ca}.key", "-out", f"{ca}.pem")  # fmt: skip
    ssl_("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
         "-keyout", "server.key", "-out", "server.csr")  # fmt: skip
    (d / "san.ext").write_text("subjectAltName = IP:127.0.0.1\n")
    ssl_("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
         "-CAcreateserial", "-days", "2", "-extfile", "san.ext", "-out", "server.pem")  # fmt: skip
    tls_port = free_port()
    private_broker.conf.write_text(
        private_broker.conf.read_text()
        + f"listener {tls_port} 127.0.0.1\ncafile {d / 'ca.pem'}\n"
        + f"certfile {d / 'server.pem'}\nkeyfile {d / 'server.key'}\n"
    )
    private_broker.restart()
    obs, client = observe(private_broker, f"{topic_prefix}/#")  # the plain listener
    try:
        for ca, delivered in (("other-ca", False), ("ca", True)):
            sink = _sink(private_broker, topic_prefix)
            mqtt = replace(sink.mqtt, port=tls_port, tls=True, ca_file=str(d / f"{ca}.pem"))
            rec = StatsRecorder.open(tmp_path / f"{ca}.db", replace(sink, mqtt=mqtt), device_id=ca)
            rec.record([_event(i, ca) for i in range(5)])
            if delivered:
                assert rec.close(20.0) is True
                wait_for(
                    lambda: _frames(obs.payloads("/ca/events/frame")) == list(range(5)), 10, "tls"
                )
            else:
                link = rec.publisher.link  # type: ignore[union-attr]
                wait_for(
                    lambda: "CERTIFICATE_VERIFY_FAILED" in str(link.last_error),  # noqa: B023
                    20,
                    "a certificate refusal",
                )
                assert rec.close(0) is False and rec.snapshot()["pending"] == 5
    finally:
        stop_observer(client)
