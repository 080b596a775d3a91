"""Each of the four Faster R-CNN variants trains a step and exports to a working ONNX."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from vision_core.infer import load_detector
from vision_core.media import read_image
from vision_core.synth import generate_dataset
from vision_train.models.faster_rcnn import VARIANTS

from .conftest import run_frcnn


@pytest.fixture(scope="module")
def two_images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("two")
    generate_dataset(root, train_images=2, val_images=1, imgsz=64, seed=3, max_objects=2)
    return root


@pytest.mark.slow
@pytest.mark.parametrize("variant", VARIANTS)
def test_variant_trains_one_step_and_exports(
    variant: str, two_images: Path, tmp_path: Path, write_config: Callable[..., Path]
) -> None:
    cfg = write_config(two_images)
    res = run_frcnn(
        cfg,
        f"train.faster_rcnn.variant={variant}",
        "train.faster_rcnn.batch=2",
        "export.quantize=false",
    )
    assert res.exit_code == 0, res.output
    (run,) = (tmp_path / "wd" / "runs").iterdir()
    m = json.loads((run / "metrics.json").read_text())["metrics"]
    assert m["variant"] == variant and m["train_images"] == 2 and m["epochs_trained"] == 1
    assert m["epochs"][0]["train_loss"] > 0  # one real optimizer step on two images
    assert m["export"]["variant"] == variant and m["export"]["ort_torch_max_abs_diff"] < 1.0
    det = load_detector(str(run / "model.onnx"), conf=0.0)
    image = read_image(sorted((two_images / "images" / "val").iterdir())[0])
    dets = det.predict(image)
    assert all(d.class_name in {"circle", "square", "triangle"} for d in dets)
