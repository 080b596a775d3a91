"""A fleet: two edges in local mode and one in stream mode through vision-server, all
sending to one vision-stats. The store's totals must equal what every process reports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fixtures.services import (
    INGEST_KEY,
    STATS_KEY,
    Service,
    start_stats,
    start_vision_server,
    stats_endpoint,
)

pytestmark = pytest.mark.slow
EDGE = Path(sys.executable).parent / "vision-edge"


def _metrics(workdir: Path) -> dict[str, Any]:
    (path,) = (workdir / "runs").glob("*/metrics.json")
    record: dict[str, Any] = json.loads(path.read_text())
    assert record["status"] == "ok", record
    metrics: dict[str, Any] = record["metrics"]
    return metrics


def test_fleet_totals_in_the_store_equal_what_each_process_reports(
    tmp_path: Path,
    trained_yolo: Any,
    synth_video: Path,
    services: Callable[..., Service],
) -> None:
    stats = services(start_stats, tmp_path / "stats")
    server = services(
        start_vision_server, tmp_path / "server", trained_yolo.onnx,
        "--set", f"deploy.stats.endpoint={stats_endpoint(stats)}",
    )  # fmt: skip
    images = Path(trained_yolo.dataset) / "images" / "val"
    edges = {
        "gate-a": ["deploy.edge.source=video", f"deploy.edge.video_path={synth_video}"],
        "gate-b": ["deploy.edge.source=images", f"deploy.edge.images_dir={images}"],
        "gate-c": ["deploy.edge.source=video", f"deploy.edge.video_path={synth_video}",
                   "deploy.edge.mode=stream",
                   f"deploy.edge.stream_endpoint={server.url}/api/v1/frame"],
    }  # fmt: skip
    env = {**os.environ, "VISION_STATS_API_KEY": STATS_KEY, "VISION_INGEST_API_KEY": INGEST_KEY}
    procs = {}
    for device, sets in edges.items():
        argv = [str(EDGE), "run", "--set", f"run.workdir={tmp_path / device}",
                "--set", f"deploy.edge.device_id={device}",
                "--set", f"infer.model_path={trained_yolo.onnx}",
                "--set", f"deploy.stats.endpoint={stats_endpoint(stats)}"]  # fmt: skip
        for item in sets:
            argv += ["--set", item]
        procs[device] = subprocess.Popen(
            argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
    for device, proc in procs.items():  # all three run at once
        out, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, f"{device}:\n{out.decode(errors='replace')}"
    assert server.stop() == 0  # graceful: flushes its outbox, writes its tally
    edge_m = {device: _metrics(tmp_path / device) for device in edges}
    server_m = _metrics(server.cwd / "server-work")

    # what each process says the store should hold
    expected_sources = {
        "gate-a": edge_m["gate-a"]["events_committed"],
        "gate-b": edge_m["gate-b"]["events_committed"],
        "gate-c": server_m["frames_by_source"]["gate-c"],
    }
    assert edge_m["gate-c"]["events_committed"] == 0  # the server counts stream frames
    assert expected_sources["gate-c"] == edge_m["gate-c"]["frames"] == 24
    assert expected_sources["gate-a"] == 24 and expected_sources["gate-b"] == 32
    expected_classes: Counter[str] = Counter()
    for device in ("gate-a", "gate-b"):
        expected_classes.update(edge_m[device]["detections_per_class"])
    expected_classes.update(server_m["detections_per_class"])
    assert server_m["detections_per_class"] == edge_m["gate-c"]["detections_per_class"]

    base = f"{stats.url}/api/v1/stats"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        overview = httpx.get(f"{base}/overview").json()
        if overview["events_total"] >= sum(expected_sources.values()):
            break
        time.sleep(0.2)
    assert overview["events_total"] == sum(expected_sources.values())
    assert overview["source_count"] == 3
    assert overview["detections_total"] == sum(expected_classes.values())
    sources = {s["source_id"]: s["events"] for s in httpx.get(f"{base}/sources").json()}
    assert sources == expected_sources
    classes = {c["class_name"]: c["detections"] for c in httpx.get(f"{base}/classes").json()}
    assert classes == dict(expected_classes)
