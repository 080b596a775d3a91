"""Scoring a tracked run against MOT ground truth, and counts against true counts.

`score_tracking` computes the CLEAR-MOT and identity metrics (MOTA, MOTP, IDF1, id
switches, ...) with py-motmetrics, a maintained library, from the `track-eval` extra:

    pip install "vision-core[track-eval]"

It is never a device dependency. motmetrics 1.4 calls `np.asfarray` (removed in NumPy 2)
only in its distance helpers; we give it distances from `vision_core.geometry.box_iou`
(the one IoU of the code base), so it runs on NumPy 2.

Matching: a prediction and a ground-truth box can be matched when their IoU is at least
`iou_threshold` (0.5, the MOTChallenge default) and, with `class_aware` (default), they
have the same class: a track that switches class is wrong for per-class counts, and is
scored so. Ground-truth rows with conf 0, or visibility below `min_visibility`, are
ignored: they are not misses, and a prediction on one is not a false positive (the
MOTChallenge rule for distractors).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from vision_core.errors import require
from vision_core.geometry import box_iou
from vision_core.track.assign import linear_assignment
from vision_core.track.mot import MotData

__all__ = [
    "CountScore",
    "TrackingScores",
    "flatten_counts",
    "score_counts",
    "score_tracking",
]

CountKey = tuple[str, str, str]  # (line, class, direction)


@dataclass(frozen=True, slots=True)
class TrackingScores:
    idf1: float
    mota: float
    motp: float  # mean IoU of matched pairs (1 - motmetrics' distance)
    id_switches: int
    false_positives: int
    misses: int
    gt_boxes: int
    predicted_boxes: int
    precision: float
    recall: float
    frames: int
    gt_tracks: int
    predicted_tracks: int
    mostly_tracked: int

    def as_dict(self) -> dict[str, float | int]:
        return {k: getattr(self, k) for k in self.__slots__}


def _ignored_hyps(gt_ign: np.ndarray, hyp: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Predictions matched (one to one) to ignored ground truth: dropped, not scored."""
    if not len(gt_ign) or not len(hyp):
        return np.empty(0, np.int64)
    cost = 1.0 - box_iou(gt_ign, hyp)
    matches, _, _ = linear_assignment(cost, 1.0 - iou_threshold)
    return matches[:, 1]


def score_tracking(
    gt: MotData,
    hyp: MotData,
    *,
    iou_threshold: float = 0.5,
    class_aware: bool = True,
    min_visibility: float = 0.0,
) -> TrackingScores:
    """IDF1, MOTA, id switches and more of `hyp` against `gt` (both MOT data)."""
    require("motmetrics", "vision-core[track-eval]", "tracking scores (IDF1, MOTA)")
    import motmetrics as mm

    acc = mm.MOTAccumulator(auto_id=False)
    gt_frames = gt.by_frame()
    hyp_frames = hyp.by_frame()
    empty = np.empty(0, np.int64)
    for frame in sorted(set(gt_frames) | set(hyp_frames)):
        g = gt_frames.get(frame, empty)
        h = hyp_frames.get(frame, empty)
        vis = gt.visibility[g]
        ignore = (gt.conf[g] <= 0) | ((vis >= 0) & (vis < min_visibility))
        if ignore.any():
            drop = _ignored_hyps(gt.xyxy[g[ignore]], hyp.xyxy[h], iou_threshold)
            h = np.delete(h, drop)
            g = g[~ignore]
        iou = box_iou(gt.xyxy[g], hyp.xyxy[h])
        dist = np.where(iou >= iou_threshold, 1.0 - iou, np.nan)
        if class_aware and dist.size:
            dist[gt.class_ids[g][:, None] != hyp.class_ids[h][None, :]] = np.nan
        acc.update(gt.ids[g].tolist(), hyp.ids[h].tolist(), dist, frameid=frame)
    names = [
        "idf1",
        "mota",
        "motp",
        "num_switches",
        "num_false_positives",
        "num_misses",
        "num_objects",
        "num_predictions",
        "precision",
        "recall",
        "num_frames",
        "num_unique_objects",
        "mostly_tracked",
    ]
    summary = mm.metrics.create().compute(acc, metrics=names, name="run")
    row: dict[str, Any] = summary.iloc[0].to_dict()

    def num(key: str) -> float:
        value = float(row[key])
        return 0.0 if value != value else value  # NaN (nothing to score) -> 0

    return TrackingScores(
        idf1=num("idf1"),
        mota=num("mota"),
        motp=1.0 - num("motp") if num("num_objects") else 0.0,
        id_switches=int(num("num_switches")),
        false_positives=int(num("num_false_positives")),
        misses=int(num("num_misses")),
        gt_boxes=int(num("num_objects")),
        predicted_boxes=int(num("num_predictions")),
        precision=num("precision"),
        recall=num("recall"),
        frames=int(num("num_frames")),
        gt_tracks=int(num("num_unique_objects")),
        predicted_tracks=len(set(hyp.ids.tolist())),
        mostly_tracked=int(num("mostly_tracked")),
    )


def flatten_counts(
    nested: Mapping[str, Mapping[str, Mapping[str, int]]],
) -> dict[CountKey, int]:
    """{line: {class: {direction: n}}} -> {(line, class, direction): n}."""
    return {
        (line, cls, direction): int(n)
        for line, by_class in nested.items()
        for cls, by_dir in by_class.items()
        for direction, n in by_dir.items()
    }


@dataclass(frozen=True, slots=True)
class CountScore:
    """Counted minus true crossings per (line, class, direction), and their sums."""

    errors: dict[CountKey, int]
    abs_error: int
    true_total: int
    counted_total: int


def score_counts(true: Mapping[CountKey, int], counted: Mapping[CountKey, int]) -> CountScore:
    keys = sorted(set(true) | set(counted))
    errors = {k: int(counted.get(k, 0)) - int(true.get(k, 0)) for k in keys}
    return CountScore(
        errors={k: v for k, v in errors.items() if v},
        abs_error=sum(abs(v) for v in errors.values()),
        true_total=sum(true.values()),
        counted_total=sum(counted.values()),
    )
