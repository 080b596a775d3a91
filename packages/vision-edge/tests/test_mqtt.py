"""The real `vision-edge run` publishing its events over MQTT (deploy.stats.transport =
mqtt) through a Mosquitto of the test's own into `vision-stats ingest-mqtt`."""

from __future__ import annotations

import json
import signal
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.mqtt import Broker, observe, start_ingest, stop_observer
from tests.fixtures.waiting import wait_for

from .conftest import run_edge

pytestmark = pytest.mark.slow


def test_edge_publishes_one_event_per_frame_over_mqtt_and_says_offline_at_the_end(
    tmp_path: Path, trained_yolo: Any, val_images: Path, private_broker: Broker, topic_prefix: str
) -> None:
    db = tmp_path / "stats.db"
    ingest = start_ingest(tmp_path / "ingest", private_broker, topic_prefix, str(db), "w1")
    obs, client = observe(private_broker, f"{topic_prefix}/gate-m/status")
    try:
        res = run_edge(
            tmp_path / "wd",
            f"infer.model_path={trained_yolo.onnx}",
            "deploy.edge.source=images",
            f"deploy.edge.images_dir={val_images}",
            "deploy.edge.device_id=gate-m",
            "deploy.stats.transport=mqtt",
            f"deploy.stats.mqtt.port={private_broker.port}",
            f"deploy.stats.mqtt.topic_prefix={topic_prefix}",
        )
        assert res.proc.returncode == 0, res.output
        frames = res.metrics["frames"]
        assert frames > 0 and res.metrics["events_pending"] == 0
        outbox = res.metrics["outbox"]
        assert outbox["transport"] == "mqtt" and outbox["sent_total"] == frames
        assert outbox["endpoint"].endswith(f"/{topic_prefix}/gate-m/events/<kind>")

        def stored() -> list[int]:
            with sqlite3.connect(db) as conn:
                rows = conn.execute("SELECT frame_index FROM events WHERE source_id = 'gate-m'")
                return sorted(int(r[0]) for r in rows)

        wait_for(lambda: db.exists() and len(stored()) == frames, 30, "every frame stored")
        assert stored() == list(range(frames))
        wait_for(lambda: obs.payloads("/status")[-1:] == [b"offline"], 10, "offline")
        assert ingest.stop(signal.SIGTERM) == 0
    finally:
        ingest.stop(signal.SIGKILL)
        stop_observer(client)
    summary = [
        json.loads(line)
        for line in (tmp_path / "ingest" / "logs" / "ingest-mqtt-w1.jsonl").read_text().splitlines()
        if '"ingest.summary"' in line
    ]
    assert summary[-1]["stored_total"] == frames and summary[-1]["malformed_total"] == 0
