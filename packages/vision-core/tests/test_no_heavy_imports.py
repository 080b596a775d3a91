"""vision_core.infer runs on a device: no torch, torchvision, ultralytics or litestar."""

from __future__ import annotations

from pathlib import Path

from tests.fixtures.blocked_imports import run_blocked

BODY = """
import numpy as np

import vision_core
import vision_core.infer
from vision_core.infer import YoloDetector, load_detector

rng = np.random.default_rng(0)
image = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)
det = YoloDetector(sys.argv[1], conf=0.001)
dets = det.predict(image)
via_factory = load_detector(sys.argv[1], conf=0.001).predict_batch([image, image[:, :200]])
RESULT = {
    "n": len(dets),
    "first": [dets[0].class_name, dets[0].score, list(dets[0].xyxy)] if dets else None,
    "batch": [len(b) for b in via_factory],
}
"""


def test_infer_runs_without_heavy_modules(tiny_yolo_onnx: Path, tmp_path: Path) -> None:
    result, imported = run_blocked(BODY, str(tiny_yolo_onnx), tmp_path=tmp_path)
    assert imported == []
    assert result["n"] > 0
    name, score, box = result["first"]
    assert name in {"circle", "square", "triangle"} and 0.001 < score <= 1.0
    assert 0 <= box[0] <= box[2] <= 320 and 0 <= box[1] <= box[3] <= 240
    assert len(result["batch"]) == 2 and result["batch"][0] == result["n"]
