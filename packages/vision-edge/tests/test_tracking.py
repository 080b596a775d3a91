"""Tracking on the device, end to end: the real `vision-edge run` on a generated scene (MOT
ground truth, true crossing counts) with the session's trained model. Every crossing, zone
visit and summary is an event; tracks, annotated video and `score-tracking`; stream mode
counts what local mode counts; crossing events reach vision-stats exactly once through a
stats outage and through SIGKILLs of the edge.

The session's model is small and sees these shapes poorly: what is checked here is where
tracking output goes, not how good the counts are (benchmarks/bench_tracking.py and the
main job measure that, with models that see well)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import pytest

from tests.fixtures.data import scene_track_sets
from tests.fixtures.services import Service, start_stats, start_vision_server, stats_endpoint
from tests.fixtures.waiting import wait_for

from .conftest import EDGE, EdgeRun, newest_run, read_run, run_edge, sigkill_rounds, start_edge

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Scene:
    onnx: Path
    scene: Any  # vision_core.synth_video.TrackingScene


@pytest.fixture(scope="module")
def scene_model(trained_yolo: Any, tracking_scene: Any) -> Scene:
    return Scene(trained_yolo.onnx, tracking_scene)


def _sets(scene_model: Scene, *extra: str) -> list[str]:
    scene = scene_model.scene
    return [
        f"infer.model_path={scene_model.onnx}",
        "deploy.edge.source=video",
        f"deploy.edge.video_path={scene.video}",
        *scene_track_sets(scene),
        "deploy.stats.max_backoff_sec=0.5",
        "deploy.stats.batch_size=8",
        *extra,
    ]


def _total(line_counts: dict[str, dict[str, dict[str, int]]]) -> int:
    return sum(n for by_cls in line_counts.values() for d in by_cls.values() for n in d.values())


def _kinds(outbox: Path) -> dict[str, set[str]]:
    """kind -> event ids in an outbox file (which must pass SQLite's integrity check)."""
    if not outbox.exists():
        return {}
    conn = sqlite3.connect(outbox)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        out: dict[str, set[str]] = {}
        for kind, event_id in conn.execute("SELECT kind, event_id FROM events"):
            out.setdefault(str(kind), set()).add(str(event_id))
        return out
    finally:
        conn.close()


def _crossings_pending(outbox: Path) -> int:
    try:
        return len(_kinds(outbox).get("crossing", set()))
    except sqlite3.Error:
        return 0


def _stored(db: str, table: str, source_id: str) -> list[str]:
    """Event ids of one source in a vision-stats table (crossings, zone_events, summaries)."""
    conn = sqlite3.connect(db)
    try:
        sql = f"SELECT event_id FROM {table} WHERE source_id = ?"
        return [str(r[0]) for r in conn.execute(sql, (source_id,))]
    finally:
        conn.close()


@pytest.fixture(scope="module")
def local_run(tmp_path_factory: pytest.TempPathFactory, scene_model: Scene) -> EdgeRun:
    """Local mode over the scene: tracks file, annotated video, frame events and summaries
    kept in the outbox (no stats endpoint)."""
    work = tmp_path_factory.mktemp("track-local")
    res = run_edge(
        work,
        *_sets(
            scene_model,
            "deploy.stats.endpoint=",
            "deploy.edge.device_id=cam-track",
            "deploy.edge.events=both",
            "deploy.edge.save_tracks=true",
            "deploy.edge.annotated_video=avi",
        ),
    )
    assert res.proc.returncode == 0, res.output
    return res


def test_local_mode_keeps_every_crossing_zone_visit_summary_and_frame_as_an_event(
    local_run: EdgeRun, scene_model: Scene
) -> None:
    scene = scene_model.scene
    tracking = local_run.metrics["tracking"]
    assert tracking["frames"] == scene.frames == local_run.metrics["frames"]
    counted = tracking["line_counts"]
    assert _total(counted) >= 1 and tracking["tracks_started"] >= 1
    assert set(counted) <= {ln.name for ln in scene.lines}
    for line in counted:  # the summary a user reads says what crossed where
        assert f"  line {line}: " in local_run.proc.stdout
    assert "  zone left: " in local_run.proc.stdout
    # every crossing, zone visit, summary and frame is an event in the outbox (no endpoint)
    kinds = _kinds(Path(local_run.metrics["outbox"]["path"]))
    assert len(kinds["crossing"]) == _total(counted)
    assert len(kinds["frame"]) == scene.frames
    assert kinds["zone"] and kinds["summary"]
    assert tracking["events"] == sum(len(v) for k, v in kinds.items() if k != "frame")


def test_local_mode_writes_tracks_an_annotated_video_and_scores_against_the_truth(
    local_run: EdgeRun, scene_model: Scene
) -> None:
    scene = scene_model.scene
    assert local_run.run_dir is not None
    video = local_run.artifacts["annotated_video"]
    cap = cv2.VideoCapture(str(video))
    try:
        assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == scene.frames
        ok, frame = cap.read()
        assert ok and frame.shape[:2] == (scene.height, scene.width)
    finally:
        cap.release()
    res = subprocess.run(
        [str(EDGE), "score-tracking", str(local_run.run_dir), "--truth", str(scene.root), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    score = json.loads(res.stdout)
    assert score["frames"] > 0 and score["gt_tracks"] > 0
    assert 0.0 <= score["idf1"] <= 1.0 and score["predicted_tracks"] >= 1
    assert score["counts"]["true_total"] == _total(scene.true_counts)
    assert score["counts"]["counted_total"] == _total(local_run.metrics["tracking"]["line_counts"])


def test_stream_mode_counts_what_local_mode_counts(
    tmp_path: Path, local_run: EdgeRun, scene_model: Scene, services: Callable[..., Service]
) -> None:
    """The edge tracks what the server answers. The scene's frames go as PNG files (sent as
    they are: the server sees the pixels local mode saw), because this small model's class
    scores are so close that JPEG noise alone flips classes; the main job compares the two
    modes on the video itself, with its better model."""
    frames = tmp_path / "frames"
    frames.mkdir()
    cap = cv2.VideoCapture(str(scene_model.scene.video))
    n = 0
    while True:
        ok, image = cap.read()
        if not ok:
            break
        assert cv2.imwrite(str(frames / f"{n:05d}.png"), image)
        n += 1
    cap.release()
    conf = next(s for s in scene_track_sets(scene_model.scene) if s.startswith("infer.conf="))
    server = services(start_vision_server, tmp_path / "srv", scene_model.onnx,
                      "--set", "deploy.stats.endpoint=", "--set", conf)  # fmt: skip
    res = run_edge(
        tmp_path / "wd",
        *_sets(
            scene_model,
            "deploy.stats.endpoint=",
            "deploy.edge.mode=stream",
            f"deploy.edge.stream_endpoint={server.url}/api/v1/frame",
            "deploy.edge.on_stream_failure=skip",  # a lost frame must not hide behind local
            "deploy.edge.source=images",
            f"deploy.edge.images_dir={frames}",
        ),
    )
    assert res.proc.returncode == 0, res.output
    assert res.metrics["frames"] == n == scene_model.scene.frames
    local = local_run.metrics["tracking"]["line_counts"]
    assert _total(local) > 0
    assert res.metrics["tracking"]["line_counts"] == local


def test_crossing_events_survive_a_stats_outage_exactly_once(
    tmp_path: Path, scene_model: Scene, services: Callable[..., Service]
) -> None:
    stats = services(start_stats, tmp_path / "stats")
    db, work = stats.extra["db"], tmp_path / "wd"
    outbox = work / "outbox" / "edge-cam-out.db"
    proc = start_edge(
        work,
        *_sets(
            scene_model,
            f"deploy.stats.endpoint={stats_endpoint(stats)}",
            "deploy.edge.device_id=cam-out",
            "deploy.edge.events=both",
            "deploy.edge.max_frames_per_sec=25",  # 150 frames: about 6 s
            "deploy.stats.flush_timeout_sec=30",
        ),
        log=tmp_path / "edge.log",
    )
    try:
        wait_for(lambda: len(_stored(db, "events", "cam-out")) >= 2, 60, "the first events")
        stats.stop()  # the outage: tracking goes on, its events wait in the outbox
        wait_for(lambda: _crossings_pending(outbox) >= 1, 60, "a crossing kept in the outbox")
        stats.restart()
        assert proc.wait(timeout=120) == 0, (tmp_path / "edge.log").read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
    metrics, record, _ = read_run(newest_run(work))
    assert record["status"] == "ok" and metrics["events_pending"] == 0
    assert metrics["outbox"]["failures_total"] >= 1  # the outage was seen
    crossings = _stored(db, "crossings", "cam-out")
    assert len(crossings) == len(set(crossings)) == _total(metrics["tracking"]["line_counts"]) > 0
    zones = _stored(db, "zone_events", "cam-out")
    assert len(zones) == len(set(zones)) > 0
    frames = _stored(db, "events", "cam-out")
    assert len(frames) == len(set(frames)) == scene_model.scene.frames


def test_crossing_events_survive_sigkill_of_the_edge_exactly_once(
    tmp_path: Path, scene_model: Scene, services: Callable[..., Service]
) -> None:
    stats = services(start_stats, tmp_path / "stats")
    db = stats.extra["db"]
    stats.stop()  # phase 1: stats down, every committed event stays in the outbox
    work = tmp_path / "wd"
    outbox = work / "outbox" / "edge-cam-kill.db"
    sets = _sets(
        scene_model,
        f"deploy.stats.endpoint={stats_endpoint(stats)}",
        "deploy.edge.device_id=cam-kill",
        "deploy.edge.max_frames_per_sec=40",
    )
    committed = sigkill_rounds(
        work,
        sets,
        tmp_path,
        rounds=2,
        grow=1,
        committed_ids=lambda: _kinds(outbox).get("crossing", set()),
    )
    assert len(committed) >= 2
    # phase 2: stats up; a whole run sends its own crossings and the killed runs' ones
    stats.restart()
    final = run_edge(work, *sets, "deploy.stats.flush_timeout_sec=30")
    assert final.proc.returncode == 0, final.output
    assert final.metrics["events_pending"] == 0
    stored = _stored(db, "crossings", "cam-kill")
    assert len(stored) == len(set(stored)), "a crossing stored twice"
    assert committed <= set(stored), "a committed crossing never reached the store"
    own = _total(final.metrics["tracking"]["line_counts"])
    assert len(stored) == len(committed) + own  # nothing else: no duplicate under a new id
    assert _kinds(outbox) == {}
