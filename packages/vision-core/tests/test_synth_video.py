"""The synthetic moving-objects video: deterministic, and its truth is consistent."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from vision_core.config.schema import TrackSection
from vision_core.synth import CLASS_NAMES
from vision_core.synth_video import TrackingScene, generate_tracking_video, load_scene
from vision_core.track.counting import TrackCounter
from vision_core.track.mot import read_mot
from vision_core.track.score import flatten_counts, score_tracking
from vision_core.track.tracker import ByteTracker, DetectionArray, TrackBatch, TrackerSettings

FRAMES = 180


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> TrackingScene:
    return generate_tracking_video(
        tmp_path_factory.mktemp("scene"), seed=4, frames=FRAMES, objects=12
    )


def _gt_batches(scene: TrackingScene) -> list[TrackBatch]:
    gt = read_mot(scene.gt)
    frames = gt.by_frame()
    out = []
    for f in range(FRAMES):
        rows = frames.get(f + 1, np.empty(0, np.int64))
        n = len(rows)
        out.append(
            TrackBatch(
                frame_index=f,
                track_ids=gt.ids[rows],
                class_ids=gt.class_ids[rows],
                xyxy=gt.xyxy[rows],
                scores=np.ones(n),
                confirmed=np.ones(n, bool),
                hits=np.full(n, 10, np.int64),
                frames_lost=np.zeros(n, np.int64),
                names=CLASS_NAMES,
            )
        )
    return out


def _nonzero(counts: dict) -> dict:
    return {k: v for k, v in counts.items() if v}


def test_true_counts_are_what_an_oracle_tracker_counts_with_our_line_rule(
    scene: TrackingScene,
) -> None:
    truth = _nonzero(flatten_counts(scene.true_counts))
    assert sum(truth.values()) >= 5  # a scene worth counting
    assert {line for line, *_ in truth} == {"gate", "upper"}
    counter = TrackCounter.from_config(TrackSection(lines=scene.lines), scene.width, scene.height)
    for f, batch in enumerate(_gt_batches(scene)):
        counter.update(batch, ts=f / scene.fps)
    assert _nonzero(counter.line_counts) == truth


def test_our_tracker_on_ground_truth_boxes_counts_the_truth_and_scores_high(
    scene: TrackingScene,
) -> None:
    tracker = ByteTracker(TrackerSettings(min_hits=2))
    counter = TrackCounter.from_config(TrackSection(lines=scene.lines), scene.width, scene.height)
    from vision_core.track.mot import MotWriter

    out = MotWriter()
    for f, gt in enumerate(_gt_batches(scene)):
        batch = tracker.update(
            DetectionArray(gt.xyxy, np.full(len(gt), 0.9), gt.class_ids, CLASS_NAMES)
        )
        counter.update(batch, ts=f / scene.fps)
        out.add(f, batch)
    assert _nonzero(counter.line_counts) == _nonzero(flatten_counts(scene.true_counts))
    s = score_tracking(read_mot(scene.gt), out.data())
    assert s.idf1 > 0.9 and s.mota > 0.9


def test_the_video_and_its_ground_truth_agree(scene: TrackingScene) -> None:
    cap = cv2.VideoCapture(str(scene.video))
    n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    ok, frame = cap.read()
    cap.release()
    assert ok and n == FRAMES and frame.shape == (scene.height, scene.width, 3)
    gt = read_mot(scene.gt)
    assert set(gt.class_ids.tolist()) <= set(CLASS_NAMES)
    assert (gt.xyxy[:, 0] >= 0).all() and (gt.xyxy[:, 2] <= scene.width).all()
    assert (gt.xyxy[:, 1] >= 0).all() and (gt.xyxy[:, 3] <= scene.height).all()
    assert ((gt.visibility > 0) & (gt.visibility <= 1)).all()
    assert (gt.visibility < 0.7).sum() > 10  # objects do hide each other (and enter/leave)
    assert len(set(gt.ids.tolist())) >= 10


def test_same_seed_same_files(scene: TrackingScene, tmp_path: Path) -> None:
    again = generate_tracking_video(tmp_path / "again", seed=4, frames=FRAMES, objects=12)
    assert again.gt.read_bytes() == scene.gt.read_bytes()
    assert again.true_counts == scene.true_counts == load_scene(scene.root).true_counts
    other = generate_tracking_video(tmp_path / "other", seed=5, frames=40, objects=12)
    assert other.gt.read_bytes() != scene.gt.read_bytes()
