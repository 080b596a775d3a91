"""Weights that are a hub name or a missing file fail at once, before any work."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

BLOCKER = textwrap.dedent(
    """
    import importlib.abc
    import sys

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {"torch", "torchvision", "ultralytics", "onnxruntime"}:
                raise ImportError(f"{name} imported before the weights were checked")
            return None

    sys.meta_path.insert(0, Block())
    from vision_train.cli import main

    main(sys.argv[1:], prog_name="vision-train")
    """
)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["--set", "train.yolo.weights=yolo11n.pt"],
            [
                "train.yolo.weights: file not found: yolo11n.pt",
                "vision-train never downloads weights",
                "'yolo11n.pt' looks like a model-hub name",
                "copy that checkpoint onto this machine and give its path",
                "or a model YAML such as yolo11n.yaml to train from scratch",
            ],
        ),
        (
            ["--set", "train.yolo.weights=/nope/best.pt"],
            [
                "train.yolo.weights: file not found: /nope/best.pt.",
                "never downloads weights",
                "give the path of a checkpoint file on this machine",
            ],
        ),
        (
            ["--backend", "faster_rcnn", "--set", "train.faster_rcnn.weights=/nope/frcnn.pt"],
            ["train.faster_rcnn.weights: file not found: /nope/frcnn.pt.", "never downloads"],
        ),
        (
            ["export", "--weights", "yolov8s.pt"],
            ["--weights: file not found: yolov8s.pt", "'yolov8s.pt' looks like a model-hub name"],
        ),
    ],
)
def test_missing_or_hub_weights_fail_before_any_import_or_dataset_read(
    tmp_path: Path, args: list[str], expected: list[str]
) -> None:
    """The dataset does not even exist and torch/ultralytics cannot be imported: the weights
    error still comes first, so nothing was loaded or read before the check."""
    cfg = tmp_path / "p.toml"
    cfg.write_text(
        f'[run]\nname = "w"\nworkdir = "{tmp_path / "wd"}"\n'
        f'[data]\nyolo_dataset_dir = "{tmp_path / "no-dataset"}"\n'
    )
    sub, rest = (args[:1], args[1:]) if args[0] == "export" else ([], args)
    res = subprocess.run(
        [sys.executable, "-c", BLOCKER, *sub, "--config", str(cfg), *rest],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    out = res.stdout + res.stderr
    assert res.returncode == 1, out
    for text in expected:
        assert text in out, out
    assert "imported before the weights were checked" not in out
    (run,) = (tmp_path / "wd" / "runs").iterdir()
    record = json.loads((run / "metrics.json").read_text())
    assert record["status"] == "failed" and expected[0] in record["error"]
    assert record["elapsed_ms"] < 2000, record["elapsed_ms"]  # it takes milliseconds
