"""Fine-tuning a trained checkpoint on new data of the same classes never makes it worse."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from vision_core.synth import generate_dataset
from vision_train.dataset import validate_yolo_dataset
from vision_train.evaluate import evaluate_onnx

EXE = Path(sys.executable).parent / "vision-train"


@pytest.mark.slow
def test_one_epoch_fine_tune_on_new_data_ends_no_worse_than_the_start(
    trained_yolo: Any, tmp_path: Path, write_config: Callable[..., Path]
) -> None:
    new = tmp_path / "new"  # the same classes, another seed
    generate_dataset(new, train_images=64, val_images=32, imgsz=trained_yolo.imgsz, seed=7,
                     max_objects=3)  # fmt: skip
    start_map50 = evaluate_onnx(trained_yolo.onnx, validate_yolo_dataset(new)).map50
    cfg = write_config(new)
    res = subprocess.run(
        [str(EXE), "--config", str(cfg), "--set", f"train.yolo.weights={trained_yolo.checkpoint}",
         "--set", f"train.yolo.imgsz={trained_yolo.imgsz}", "--set", "export.quantize=false"],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    (run,) = (tmp_path / "wd" / "runs").iterdir()
    m = json.loads((run / "metrics.json").read_text())["metrics"]
    assert m["finetune_from"] == str(trained_yolo.checkpoint)
    ft = m["finetune"]
    assert m["epochs"][0]["epoch"] == 0 and m["epochs"][0]["mAP50"] == ft["map50_before"]
    assert [e["epoch"] for e in m["epochs"]] == [0, 1]
    assert ft["map50_before"] > 0.15  # the start does detect the shapes
    assert ft["map50_after"] >= ft["map50_before"]
    assert ft["kept"] in {"start", "trained"}
    assert m["fp32"]["map50"] >= start_map50 - 0.01, (m["fp32"]["map50"], start_map50)
    assert f"fine-tune mAP50 {ft['map50_before']:.3f} before" in res.stdout
