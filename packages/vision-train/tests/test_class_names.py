"""A checkpoint whose class names differ from the dataset's: an error naming both lists,
unless train.on_class_mismatch says otherwise; evaluation warns."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from vision_train.cli import main
from vision_train.models.faster_rcnn import build_model, save_checkpoint

from .conftest import run_frcnn

SHAPES = "[0: circle, 1: square, 2: triangle]"
OTHER = ["ball", "box", "cone"]
OTHER_LISTED = "[0: ball, 1: box, 2: cone]"


def runs(workdir: Path) -> list[Path]:
    return sorted((workdir / "runs").iterdir(), key=lambda p: p.name)


def _frcnn_checkpoint(path: Path, names: dict[int, str]) -> Path:
    return save_checkpoint(
        path, build_model("mobilenet_v3", len(names) + 1, 64), "mobilenet_v3", names, 64
    )


def test_faster_rcnn_checkpoint_with_other_names_is_an_error_naming_both_lists(
    synth_dataset: Path, tmp_path: Path, write_config: Callable[..., Path]
) -> None:
    ckpt = _frcnn_checkpoint(tmp_path / "start.pt", dict(enumerate(OTHER)))
    cfg = write_config(synth_dataset)
    res = run_frcnn(cfg, f"train.faster_rcnn.weights={ckpt}", "train.dry_run=true")
    assert res.exit_code == 1, res.output
    assert f"class names differ: {ckpt} has {OTHER_LISTED}, the dataset has {SHAPES}" in res.output
    assert 'train.on_class_mismatch = "use_dataset"' in res.output
    (run,) = runs(tmp_path / "wd")
    assert json.loads((run / "metrics.json").read_text())["error_type"] == "ClassNamesError"


def test_use_dataset_trains_on_the_datasets_names_with_a_warning(
    synth_dataset: Path, tmp_path: Path, write_config: Callable[..., Path]
) -> None:
    # four classes in the checkpoint, three in the dataset: the predictor starts fresh
    ckpt = _frcnn_checkpoint(tmp_path / "start.pt", dict(enumerate([*OTHER, "star"])))
    cfg = write_config(synth_dataset)
    res = run_frcnn(
        cfg,
        f"train.faster_rcnn.weights={ckpt}",
        "train.dry_run=true",
        "train.on_class_mismatch=use_dataset",
    )
    assert res.exit_code == 0, res.output
    assert "class names differ" in res.output and "training on the dataset's names" in res.output
    (run,) = runs(tmp_path / "wd")
    m = json.loads((run / "metrics.json").read_text())["metrics"]
    assert m["class_mismatch"]["model"]["3"] == "star"
    assert m["class_mismatch"]["dataset"] == {"0": "circle", "1": "square", "2": "triangle"}


@pytest.fixture
def other_names_config(
    trained_yolo: Any,
    write_config: Callable[..., Path],
    renamed_dataset: Callable[[Path, list[str]], Path],
) -> Path:
    """A config over trained_yolo's dataset with the class names OTHER."""
    return write_config(renamed_dataset(trained_yolo.dataset, OTHER))


@pytest.mark.slow
def test_yolo_checkpoint_with_other_names_is_refused_by_train_and_export(
    trained_yolo: Any, other_names_config: Path
) -> None:
    cfg = other_names_config
    ckpt = str(trained_yolo.checkpoint)
    for args in (
        [
            "--config",
            str(cfg),
            "--set",
            f"train.yolo.weights={ckpt}",
            "--set",
            "train.dry_run=true",
        ],
        ["export", "--config", str(cfg), "--weights", ckpt, "--set", "export.quantize=false"],
    ):
        res = CliRunner().invoke(main, args)
        assert res.exit_code == 1, res.output
        assert f"has {SHAPES}, the dataset has {OTHER_LISTED}" in res.output


@pytest.mark.slow
def test_eval_warns_on_other_names_and_files_figures_under_the_models_precision(
    trained_yolo: Any, tmp_path: Path, other_names_config: Path
) -> None:
    cfg = other_names_config
    filed = {}
    for model in (trained_yolo.onnx, trained_yolo.onnx_int8):
        res = CliRunner().invoke(main, ["eval", "--config", str(cfg), "--model", str(model)])
        assert res.exit_code == 0, res.output
        assert f"class names differ: {model} has {SHAPES}" in res.output
        assert "mAP is computed by class id" in res.output
        run = runs(tmp_path / "wd")[-1]
        m = json.loads((run / "metrics.json").read_text())["metrics"]
        assert m["class_mismatch"]["dataset"]["0"] == "ball"
        filed[model.name] = {k for k in ("fp32", "int8") if k in m}
        assert m["val"]["map50"] > 0.15  # by class id the figures are the model's own
        artifacts = json.loads((run / "artifacts.json").read_text())
        assert artifacts["model_precision"] in filed[model.name]
    assert filed == {"model.onnx": {"fp32"}, "model-int8.onnx": {"int8"}}
