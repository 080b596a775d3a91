"""Stream mode against a real `vision-server serve` on loopback (and a real vision-stats)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.services import (
    INGEST_KEY,
    Service,
    start_stats,
    start_vision_server,
    stats_endpoint,
    stats_rows,
)
from tests.fixtures.waiting import wait_for
from vision_core.config import load_config
from vision_core.infer import load_detector
from vision_core.logging import StructuredLogger
from vision_core.media import FrameSource
from vision_core.pipeline import LocalEngine
from vision_edge.engines import StreamEngine

from .conftest import edge_env, run_edge, run_local_reference

pytestmark = pytest.mark.slow


@pytest.fixture
def good_folder(tmp_path: Path, mixed_folder: tuple[Path, list[Path]]) -> Path:
    _, good = mixed_folder
    clean = tmp_path / "good"
    clean.mkdir()
    for p in good:
        (clean / p.name).write_bytes(p.read_bytes())
    return clean


def _stream_sets(server: Service | None, folder: Path, *extra: str) -> list[str]:
    url = f"{server.url}/api/v1/frame" if server else "http://127.0.0.1:9/api/v1/frame"
    return [
        "deploy.edge.mode=stream",
        f"deploy.edge.stream_endpoint={url}",
        "deploy.edge.source=images",
        f"deploy.edge.images_dir={folder}",
        "deploy.edge.timeout_sec=10",
        *extra,
    ]


def test_stream_detections_equal_local_mode(
    tmp_path: Path, trained_yolo: Any, good_folder: Path, services: Callable[..., Service]
) -> None:
    server = services(start_vision_server, tmp_path / "srv", trained_yolo.onnx,
                      "--set", "deploy.stats.endpoint=")  # fmt: skip
    cfg = load_config(None, _stream_sets(server, good_folder))
    stream = StreamEngine(cfg.deploy.edge, INGEST_KEY, fallback=None, logger=StructuredLogger(None))
    local = LocalEngine(load_detector(trained_yolo.onnx))
    compared = 0
    try:
        for frame in FrameSource("images", good_folder):
            got = stream.infer(frame, stream.prepare(frame))
            want = local.infer(frame, local.prepare(frame))
            assert got.dropped is None and got.fallback is None, got.error
            assert got.where == "stream"
            assert [d.class_id for d in got.detections] == [d.class_id for d in want.detections]
            for a, b in zip(got.detections, want.detections, strict=True):
                assert a.score == pytest.approx(b.score, abs=1e-5)
                assert a.xyxy == pytest.approx(b.xyxy, abs=1e-3)
            compared += len(want.detections)
    finally:
        stream.close()
    assert compared > 0  # the model found something to compare


def test_stream_run_is_counted_once_by_the_server(
    tmp_path: Path, trained_yolo: Any, good_folder: Path, services: Callable[..., Service]
) -> None:
    stats = services(start_stats, tmp_path / "stats")
    server = services(start_vision_server, tmp_path / "srv", trained_yolo.onnx,
                      "--set", f"deploy.stats.endpoint={stats_endpoint(stats)}")  # fmt: skip
    local = run_local_reference(tmp_path, trained_yolo.onnx, good_folder)
    res = run_edge(
        tmp_path / "wd",
        *_stream_sets(server, good_folder, "deploy.edge.device_id=cam-stream"),
        f"deploy.stats.endpoint={stats_endpoint(stats)}",
    )
    assert res.proc.returncode == 0, res.output
    m = res.metrics
    assert m["frames"] == 8 and m["dropped"] == {} and m["stream_fallbacks"] == {}
    assert m["detections_per_class"] == local.metrics["detections_per_class"]
    assert m["events_committed"] == 0  # the server recorded every frame, the edge none
    assert m["engine"]["answered"] == 8
    wait_for(lambda: len(stats_rows(stats.extra["db"], "cam-stream")) >= 8, 30, "8 events")
    rows = stats_rows(stats.extra["db"], "cam-stream")
    assert sorted(r[2] for r in rows) == list(range(8))
    assert sum(r[3] for r in rows) == m["detections_total"]


def test_server_down_falls_back_to_local_for_every_frame(
    tmp_path: Path, trained_yolo: Any, good_folder: Path
) -> None:
    local = run_local_reference(tmp_path, trained_yolo.onnx, good_folder)
    res = run_edge(
        tmp_path / "wd",
        *_stream_sets(None, good_folder),
        "deploy.edge.on_stream_failure=local",
        f"infer.model_path={trained_yolo.onnx}",
        "deploy.stats.endpoint=",
    )
    assert res.proc.returncode == 0, res.output
    m = res.metrics
    assert m["frames"] == 8 and m["dropped"] == {}
    assert sum(m["stream_fallbacks"].values()) == 8
    assert m["stream_fallbacks"]["stream_unreachable"] >= 1
    assert m["detections_per_class"] == local.metrics["detections_per_class"]
    assert m["events_committed"] == 8  # the edge ran them: the edge records them
    db = sqlite3.connect(m["outbox"]["path"])
    events = [json.loads(p) for (p,) in db.execute("SELECT payload FROM events")]
    db.close()
    assert {(e["mode"], e["model"]) for e in events} == {("local", "model.onnx")}


def test_server_down_with_skip_counts_dropped_frames(tmp_path: Path, good_folder: Path) -> None:
    res = run_edge(tmp_path / "wd", *_stream_sets(None, good_folder), "deploy.stats.endpoint=")
    assert res.proc.returncode == 0, res.output
    m = res.metrics
    assert m["frames"] == 0 and m["events_committed"] == 0
    assert sum(m["dropped"].values()) == 8 and m["dropped"]["stream_unreachable"] >= 1
    assert set(m["dropped"]) <= {"stream_unreachable", "stream_server_down"}


def test_wrong_api_key_ends_the_run_naming_the_key(
    tmp_path: Path, trained_yolo: Any, good_folder: Path, services: Callable[..., Service]
) -> None:
    server = services(start_vision_server, tmp_path / "srv", trained_yolo.onnx,
                      "--set", "deploy.stats.endpoint=")  # fmt: skip
    res = run_edge(
        tmp_path / "wd",
        *_stream_sets(server, good_folder),
        "deploy.stats.endpoint=",
        env=edge_env(VISION_INGEST_API_KEY="wrong-key"),
    )
    assert res.proc.returncode == 1
    assert "deploy.remote.api_key_env" in res.output and "401" in res.output
