"""Stats that survive anything: a stats outage, SIGKILLs, SIGTERM. Real vision-stats, real
SQLite, the real `vision-edge run` in a subprocess."""

from __future__ import annotations

import json
import signal
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.services import Service, start_stats, stats_endpoint, stats_rows
from tests.fixtures.waiting import wait_for

from .conftest import (
    LiveEdge,
    newest_run,
    read_run,
    run_edge,
    sigkill_rounds,
    start_edge,
    start_edge_with_stats,
    video_sets,
)

pytestmark = pytest.mark.slow


def _video_sets(model: Path, video: Path, *extra: str) -> list[str]:
    return [
        *video_sets(video, model),
        "deploy.stats.max_backoff_sec=0.5",
        "deploy.stats.batch_size=4",
        *extra,
    ]


@pytest.fixture
def video_edge(
    tmp_path: Path, trained_yolo: Any, synth_video: Path, services: Callable[..., Service]
) -> Callable[..., LiveEdge]:
    """video_edge(*sets): an edge running the trained model on the 24-frame video in the
    background, posting to a fresh vision-stats."""

    def start(*sets: str) -> LiveEdge:
        return start_edge_with_stats(
            tmp_path, services, *_video_sets(trained_yolo.onnx, synth_video, *sets)
        )

    return start


def _outbox_ids(path: Path) -> set[str]:
    """The event ids in an outbox file; the file must pass SQLite's integrity check."""
    if not path.exists():
        return set()
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        return {str(r[0]) for r in conn.execute("SELECT event_id FROM events")}
    finally:
        conn.close()


def _count(path: Path) -> int:
    try:
        return len(_outbox_ids(path))
    except sqlite3.Error:
        return 0


def test_stats_outage_loses_nothing_and_counts_each_frame_once(
    video_edge: Callable[..., LiveEdge],
) -> None:
    edge = video_edge(
        "deploy.edge.max_frames_per_sec=5",  # 24 frames: about 5 s
        "deploy.stats.flush_timeout_sec=20",
        "deploy.edge.device_id=cam-outage",
    )
    work, db = edge.work, edge.stats.extra["db"]
    try:
        wait_for(lambda: len(edge.rows()) >= 2, 30, "the first events in the stats store")
        edge.stats.stop()  # the outage: frames go on, events wait in the outbox
        outbox = work / "outbox" / "edge-cam-outage.db"
        wait_for(lambda: _count(outbox) >= 3, 60, "events kept in the outbox during the outage")
        edge.stats.restart()
        assert edge.proc.wait(timeout=120) == 0, edge.log.read_text()
    finally:
        if edge.proc.poll() is None:
            edge.proc.kill()
    metrics, record, _ = read_run(newest_run(work))
    assert record["status"] == "ok"
    assert metrics["frames"] == 24
    assert metrics["events_committed"] == 24 and metrics["events_pending"] == 0
    assert metrics["outbox"]["failures_total"] >= 1  # the outage was seen
    rows = stats_rows(db, "cam-outage")
    assert sorted(r[2] for r in rows) == list(range(24))  # every frame once
    assert len({r[0] for r in rows}) == 24
    assert sum(r[3] for r in rows) == metrics["detections_total"]


def test_sigkill_never_loses_or_duplicates_a_committed_event(
    tmp_path: Path,
    trained_yolo: Any,
    synth_video: Path,
    services: Callable[..., Service],
) -> None:
    work = tmp_path / "wd"
    outbox = work / "outbox" / "edge-cam-kill.db"
    stats_port_holder = tmp_path / "stats"
    stats = services(start_stats, stats_port_holder)
    db = stats.extra["db"]
    stats.stop()  # phase 1: stats down, every committed event stays in the outbox
    sets = _video_sets(
        trained_yolo.onnx,
        synth_video,
        f"deploy.stats.endpoint={stats_endpoint(stats)}",
        "deploy.edge.max_frames_per_sec=8",
        "deploy.edge.device_id=cam-kill",
    )
    committed = sigkill_rounds(
        work, sets, tmp_path, rounds=3, grow=3, committed_ids=lambda: _outbox_ids(outbox)
    )
    assert len(committed) >= 9
    # phase 2: stats up; kill while the sender is posting
    stats.restart()
    proc = start_edge(work, *sets, log=tmp_path / "kill-sending.log")
    try:
        wait_for(lambda: len(stats_rows(db)) >= len(committed) + 2, 60, "a resend under way")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    committed |= _outbox_ids(outbox) | {r[0] for r in stats_rows(db)}
    # the last run goes to its end and flushes everything, old events included
    final = run_edge(work, *sets, "deploy.edge.max_frames=4", "deploy.stats.flush_timeout_sec=30")
    assert final.proc.returncode == 0, final.output
    assert final.metrics["events_pending"] == 0 and final.metrics["events_committed"] == 4
    stored = stats_rows(db, "cam-kill")
    stored_ids = [r[0] for r in stored]
    assert len(stored_ids) == len(set(stored_ids))
    assert committed <= set(stored_ids), "a committed event never reached the store"
    assert len(stored_ids) == len(committed) + 4  # nothing else: no duplicate under a new id
    assert _outbox_ids(outbox) == set()


def test_sigterm_finishes_flushes_and_exits_0(video_edge: Callable[..., LiveEdge]) -> None:
    edge = video_edge("deploy.edge.max_frames_per_sec=4", "deploy.edge.device_id=cam-term")
    wait_for(lambda: len(edge.rows()) >= 2, 60, "the first events")
    assert edge.end(signal.SIGTERM) == 0, edge.log.read_text()
    work = edge.work
    run_dir = newest_run(work)
    metrics, record, artifacts = read_run(run_dir)
    assert record["status"] == "ok" and artifacts["stopped_by"] == "SIGTERM"
    assert 2 <= metrics["frames"] < 24
    assert metrics["events_pending"] == 0  # flushed before exit
    rows = edge.rows("cam-term")
    assert sorted(r[2] for r in rows) == list(range(metrics["frames"]))
    assert json.loads((run_dir / "metrics.json").read_text())["metrics"]["fps"] > 0  # type: ignore[operator]


def test_outbox_cap_drops_oldest_and_counts(
    tmp_path: Path, trained_yolo: Any, synth_video: Path
) -> None:
    res = run_edge(
        tmp_path / "wd",
        *_video_sets(trained_yolo.onnx, synth_video, "deploy.stats.endpoint="),
        "deploy.stats.outbox_max_events=10",
    )
    assert res.proc.returncode == 0, res.output
    assert res.metrics["frames"] == 24
    assert res.metrics["events_pending"] == 10
    assert res.metrics["outbox"]["dropped_total"] == 14
    conn = sqlite3.connect(res.metrics["outbox"]["path"])
    idx = sorted(
        json.loads(p)["frame_index"] for (p,) in conn.execute("SELECT payload FROM events")
    )
    conn.close()
    assert idx == list(range(14, 24))  # drop_oldest kept the newest
    assert "dropped" in (res.run_dir / "log.jsonl").read_text()  # type: ignore[operator]


def test_outbox_file_is_named_after_the_device(tmp_path: Path) -> None:
    """The outbox file of a device is named after its id (safe characters only)."""
    from vision_core.config import load_config
    from vision_edge.runtime import outbox_path

    cfg = load_config(None, [f"run.workdir={tmp_path}", "deploy.edge.device_id=gate 3/north"])
    assert outbox_path(cfg) == tmp_path.resolve() / "outbox" / "edge-gate_3_north.db"
