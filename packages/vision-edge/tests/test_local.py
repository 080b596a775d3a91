"""Local mode through the real `vision-edge run`: image folders, video, bad input, status."""

from __future__ import annotations

import json
import math
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pytest

from vision_core.infer import load_detector
from vision_core.media import read_image

from .conftest import edge_argv, edge_env, run_edge, video_sets

NO_STATS = "deploy.stats.endpoint="


def test_local_mode_on_a_folder_with_bad_files(
    tmp_path: Path, trained_yolo: Any, mixed_folder: tuple[Path, list[Path]]
) -> None:
    folder, good = mixed_folder
    work = tmp_path / "wd"
    res = run_edge(
        work,
        f"infer.model_path={trained_yolo.onnx}",
        "deploy.edge.source=images",
        f"deploy.edge.images_dir={folder}",
        NO_STATS,
        "deploy.edge.save_annotated=true",
        "deploy.edge.annotate_every=3",
    )
    assert res.proc.returncode == 0, res.output
    m = res.metrics
    assert res.record["status"] == "ok"
    assert m["frames"] == len(good) == 8
    assert m["dropped"] == {"unreadable": 2}  # corrupt.jpg and empty.jpg; notes.txt ignored
    assert m["events_committed"] == 8
    assert m["events_pending"] == 8  # no endpoint: the events wait in the outbox
    assert m["latency_ms"]["p50"] > 0 and m["fps"] > 0
    # the same detections as the vision-core adapter in-process, image by image
    det = load_detector(trained_yolo.onnx)
    expected: dict[str, int] = {}
    for path in good:
        for d in det.predict(read_image(path)):
            expected[d.class_name] = expected.get(d.class_name, 0) + 1
    assert m["detections_per_class"] == dict(sorted(expected.items()))
    assert m["detections_total"] == sum(expected.values()) > 0
    saved = sorted((res.run_dir / "outputs").glob("*.jpg"))  # type: ignore[operator]
    assert len(saved) == math.ceil(8 / 3) == m["annotated_saved"]
    log = (res.run_dir / "log.jsonl").read_text()  # type: ignore[operator]
    assert "corrupt.jpg: not a decodable image" in log and "empty.jpg: empty file" in log
    # the outbox holds one event per processed frame, for this device
    db = sqlite3.connect(m["outbox"]["path"])
    payloads = [json.loads(p) for (p,) in db.execute("SELECT payload FROM events")]
    db.close()
    assert sorted(p["frame_index"] for p in payloads) == list(range(8))
    assert {p["source_id"] for p in payloads} == {"edge-01"}
    assert sum(p["detections_total"] for p in payloads) == m["detections_total"]


def test_local_mode_on_a_video(tmp_path: Path, trained_yolo: Any, synth_video: Path) -> None:
    res = run_edge(
        tmp_path / "wd",
        *video_sets(synth_video, trained_yolo.onnx),
        NO_STATS,
    )
    assert res.proc.returncode == 0, res.output
    assert res.metrics["frames"] == 24
    assert res.metrics["dropped"] == {}
    assert res.artifacts["stopped_by"] == "source ended"
    assert "frames 24 at" in res.proc.stdout  # the summary


def test_max_frames_and_fps_limit(tmp_path: Path, trained_yolo: Any, synth_video: Path) -> None:
    res = run_edge(
        tmp_path / "wd",
        *video_sets(synth_video, trained_yolo.onnx),
        "deploy.edge.max_frames=6",
        "deploy.edge.max_frames_per_sec=10",
        NO_STATS,
    )
    assert res.proc.returncode == 0, res.output
    assert res.metrics["frames"] == 6
    assert res.metrics["wall_sec"] >= 0.45  # 6 frames at <= 10 fps: 5 periods at least


@pytest.mark.parametrize(
    ("sets", "code", "message"),
    [
        (["deploy.edge.source=video", "deploy.edge.video_path=missing.mp4"], 1,
         "deploy.edge.video_path: video file not found: missing.mp4"),
        (["deploy.edge.source=video"], 2,
         "deploy.edge.video_path: required when deploy.edge.source = 'video'"),
        (["deploy.edge.source=images"], 1, "deploy.edge.images_dir is empty"),
        (["deploy.edge.source=images", "deploy.edge.images_dir=nowhere"], 1,
         "deploy.edge.images_dir: image folder not found: nowhere"),
        (["deploy.edge.mode=cloud"], 2,
         "deploy.edge.mode: expected one of 'local', 'stream', 'llm', got 'cloud'"),
        (["deploy.edge.max_frames_per_sec=-1"], 2, "deploy.edge.max_frames_per_sec"),
        (["deploy.edge.source=video", "VIDEO", "infer.model_path=nope.onnx"], 1, "nope.onnx"),
        (["deploy.edge.mode=stream", "deploy.edge.on_stream_failure=local", "deploy.edge.source=video",
          "VIDEO", "infer.model_path=nope.onnx"], 1,
         "deploy.edge.on_stream_failure = 'local' needs a local model"),
        (["deploy.edge.mode=stream", "deploy.edge.source=video", "VIDEO",
          "deploy.edge.stream_endpoint=ftp://x"], 1, "deploy.edge.stream_endpoint: must be an http"),
    ],
)  # fmt: skip
def test_bad_input_fails_with_the_key_named(
    tmp_path: Path, synth_video: Path, sets: list[str], code: int, message: str
) -> None:
    sets = [f"deploy.edge.video_path={synth_video}" if s == "VIDEO" else s for s in sets]
    work = tmp_path / "wd"
    res = run_edge(work, NO_STATS, *sets, timeout=120)
    assert res.proc.returncode == code, res.output
    assert message in res.output
    assert res.run_dir is not None  # a failed run still leaves its records
    assert res.record["status"] == "failed" and message.split(":")[0] in res.record["error"]


def test_status_shows_the_outbox(tmp_path: Path, trained_yolo: Any, synth_video: Path) -> None:
    work = tmp_path / "wd"
    empty = subprocess.run(
        edge_argv(work, [], "status"), capture_output=True, text=True, env=edge_env()
    )
    assert empty.returncode == 0 and "no outbox yet" in empty.stdout
    res = run_edge(
        work,
        *video_sets(synth_video, trained_yolo.onnx),
        "deploy.edge.max_frames=5",
        "deploy.stats.endpoint=http://127.0.0.1:9/api/v1/stats/events",  # nothing listens
        "deploy.stats.flush_timeout_sec=1",
    )
    assert res.proc.returncode == 0, res.output
    out = subprocess.run(
        [*edge_argv(work, [], "status"), "--json"], capture_output=True, text=True, env=edge_env()
    )
    info = json.loads(out.stdout)
    assert info["pending"] == 5 and info["integrity"] == []
    assert info["oldest_age_sec"] >= 0
    assert info["last_error"]  # the refused connection, recorded by the sender
    text = subprocess.run(
        edge_argv(work, [], "status"), capture_output=True, text=True, env=edge_env()
    ).stdout
    assert "pending events  5" in text


def test_two_runners_give_the_same_detections_in_frame_order(
    tmp_path: Path, trained_yolo: Any, synth_video: Path
) -> None:
    runs = {}
    for n in (1, 2):
        runs[n] = run_edge(
            tmp_path / f"wd{n}",
            *video_sets(synth_video, trained_yolo.onnx),
            f"deploy.edge.runners={n}",
            NO_STATS,
        )
        assert runs[n].proc.returncode == 0, runs[n].output
    assert runs[2].metrics["frames"] == 24
    assert runs[2].metrics["detections_per_class"] == runs[1].metrics["detections_per_class"]
    db = sqlite3.connect(runs[2].metrics["outbox"]["path"])
    order = [
        json.loads(p)["frame_index"]
        for (p,) in db.execute("SELECT payload FROM events ORDER BY id")
    ]
    db.close()
    assert order == list(range(24))  # committed in frame order
