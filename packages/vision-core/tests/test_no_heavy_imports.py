"""vision_core runs on a device: no torch, torchvision, ultralytics or litestar, and each
light module imports no more than it needs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.blocked_imports import DEVICE_BLOCKED, run_blocked

LINES_AND_ZONES = (
    "{'track': {'lines': [{'name': 'g', 'points': [[0, 0], [1, 1]]}], "
    "'zones': [{'name': 'z', 'points': [[0, 0], [1, 0], [1, 1]]}]}}"
)


@pytest.mark.parametrize(
    ("code", "heavy"),
    [
        pytest.param(  # a device: no numpy, OpenCV, ONNX Runtime or a second HTTP library
            "import vision_core.stats",
            ("numpy", "cv2", "onnxruntime", "requests", "urllib3", "torch", "litestar"),
            id="outbox-and-sender",
        ),
        pytest.param(
            f"from vision_core.config import build_config; build_config({LINES_AND_ZONES})",
            ("numpy",),
            id="config-with-lines-and-zones",
        ),
        pytest.param(
            "import vision_core.llm", ("torch", "ultralytics", "litestar"), id="llm-client"
        ),
    ],
)
def test_light_modules_import_nothing_heavy(code: str, heavy: tuple[str, ...]) -> None:
    probe = (
        f"{code}\nimport sys, json\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {heavy!r})))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


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


TRACK_BODY = """
from vision_core.config import build_config
from vision_core.track import SourceTracking
from vision_core.types import Detection

cfg = build_config({"track": {
    "min_hits": 2,
    "lines": [{"name": "gate", "points": [[0.5, 0.0], [0.5, 1.0]]}],
    "zones": [{"name": "left", "points": [[0, 0], [0.5, 0], [0.5, 1], [0, 1]]}],
}})
tracking = SourceTracking(cfg.track, width=640, height=480, source_id="cam")
kinds = []
for f in range(120):
    x = 600.0 - 6 * f
    dets = [Detection(class_id=1, class_name="square", score=0.9, xyxy=(x, 200, x + 30, 230))]
    kinds += [type(e).__name__ for e in tracking.step(dets, ts=1.7e9 + f / 15).events]
kinds += [type(e).__name__ for e in tracking.close()]
RESULT = {
    "kinds": sorted(set(kinds)),
    "crossings": tracking.counter.line_counts.get(("gate", "square", "out"), 0),
}
"""


def test_tracking_runs_without_heavy_modules(tmp_path: Path) -> None:
    """The tracker, counters and events run on a device: no torch and friends, and no
    scipy/pandas/motmetrics/lap either (those are for scoring and benchmarks only)."""
    blocked = (*DEVICE_BLOCKED, "scipy", "pandas", "motmetrics", "lap")
    result, imported = run_blocked(TRACK_BODY, blocked=blocked, tmp_path=tmp_path)
    assert imported == []
    assert result["crossings"] == 1
    assert result["kinds"] == ["CrossingEvent", "IntervalSummary", "ZoneEvent"]
