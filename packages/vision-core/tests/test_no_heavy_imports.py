"""vision_core.infer runs on a device: no torch, torchvision, ultralytics or litestar."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

BLOCKED = ("torch", "torchvision", "ultralytics", "litestar")

SCRIPT = textwrap.dedent(
    """
    import importlib.abc
    import json
    import sys

    BLOCKED = {blocked!r}


    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"{{name}} is blocked on this device")
            return None


    sys.meta_path.insert(0, Block())
    try:
        import torch  # noqa: F401
    except ImportError:
        pass
    else:
        raise SystemExit("the import blocker does not work")

    import numpy as np

    import vision_core
    import vision_core.infer
    from vision_core.infer import YoloDetector, load_detector

    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)
    det = YoloDetector(sys.argv[1], conf=0.001)
    dets = det.predict(image)
    via_factory = load_detector(sys.argv[1], conf=0.001).predict_batch([image, image[:, :200]])
    print(json.dumps({{
        "n": len(dets),
        "first": [dets[0].class_name, dets[0].score, list(dets[0].xyxy)] if dets else None,
        "batch": [len(b) for b in via_factory],
        "heavy": sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED),
    }}))
    """
)


@pytest.mark.slow
def test_infer_runs_without_heavy_modules(tiny_yolo_onnx: Path, tmp_path: Path) -> None:
    script = tmp_path / "device.py"
    script.write_text(SCRIPT.format(blocked=BLOCKED), encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, str(script), str(tiny_yolo_onnx)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["heavy"] == []
    assert result["n"] > 0
    name, score, box = result["first"]
    assert name in {"circle", "square", "triangle"} and 0.001 < score <= 1.0
    assert 0 <= box[0] <= box[2] <= 320 and 0 <= box[1] <= box[3] <= 240
    assert len(result["batch"]) == 2 and result["batch"][0] == result["n"]
