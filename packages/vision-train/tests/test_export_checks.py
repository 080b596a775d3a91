"""The Faster R-CNN export check matches detections: ties may swap, real differences fail."""

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


@pytest.mark.parametrize(
    ("change", "what"),
    [
        ("box", "detection 1 (class 1, score 0.5000"),
        ("label", "detection 2 (class 1, score 0.3000"),
        ("score", "detection 2 (class 2, score 0.3100"),
    ],
)
def test_a_real_difference_is_an_export_error(change: str, what: str) -> None:
    boxes, labels, scores = BOXES.copy(), LABELS.copy(), SCORES.copy()
    if change == "box":
        boxes[1] += 3.0
    elif change == "label":
        labels[2] = 1
    else:
        scores[2] += 0.01
    with pytest.raises(ExportError, match="ONNX Runtime and PyTorch outputs differ") as err:
        _match_detections("m", (boxes, labels, scores), (BOXES, LABELS, SCORES))
    assert what in str(err.value)
