"""The Faster R-CNN export check matches detections: ties may swap and a marginal one may
go missing; a wrong best detection or many differences fail."""

from __future__ import annotations

import numpy as np
import pytest

from vision_train.errors import ExportError
from vision_train.export.faster_rcnn import _match_detections

BOXES = np.array([[10, 10, 30, 30], [40, 40, 60, 60], [5, 30, 20, 50]], np.float32)
LABELS = np.array([1, 1, 2])
SCORES = np.array([0.5, 0.5, 0.3], np.float32)  # the first two tie


def test_tied_detections_in_another_order_still_match() -> None:
    order = [1, 0, 2]
    got = (BOXES[order] + 0.01, LABELS[order], SCORES[order])
    assert _match_detections("m", got, (BOXES, LABELS, SCORES)) == pytest.approx(0.01, abs=1e-6)


def test_one_marginal_detection_may_differ() -> None:
    scores = SCORES.copy()
    scores[2] += 0.01  # the last one: a proposal cut differently on a near tie
    assert _match_detections("m", (BOXES, LABELS, scores), (BOXES, LABELS, SCORES)) == 0.0


@pytest.mark.parametrize("change", ["best box", "every label", "every box"])
def test_a_wrong_best_detection_is_an_export_error(change: str) -> None:
    boxes, labels = BOXES.copy(), LABELS.copy()
    if change == "best box":
        boxes[0] += 3.0
    elif change == "every label":
        labels = labels + 1
    else:
        boxes = boxes * 1.5
    with pytest.raises(
        ExportError, match="ONNX Runtime and PyTorch outputs differ: 1 of the top 1"
    ):
        _match_detections("m", (boxes, labels, SCORES), (BOXES, LABELS, SCORES))


def test_more_than_one_in_five_unmatched_is_an_export_error() -> None:
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 100, (10, 2)).astype(np.float32)
    boxes = np.concatenate([xy, xy + 20], axis=1)
    labels = np.ones(10, np.int64)
    scores = np.linspace(0.9, 0.45, 10).astype(np.float32)
    moved = boxes.copy()
    moved[[5, 6, 7]] += 4.0
    with pytest.raises(ExportError, match="3 of the top 8 detections"):
        _match_detections("m", (moved, labels, scores), (boxes, labels, scores))
    moved[7] -= 4.0  # two of ten may go unmatched
    assert _match_detections("m", (moved, labels, scores), (boxes, labels, scores)) == 0.0
