"""Our evaluation (vision-core runtime + metrics) against ultralytics val on the same ONNX."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from tests.fixtures.trained import TrainedYolo
from vision_core.metrics import MetricAccumulator, compute_ap
from vision_train.dataset import validate_yolo_dataset
from vision_train.evaluate import evaluate_onnx


@pytest.mark.slow
def test_eval_agrees_with_ultralytics_val_within_002(trained_yolo: TrainedYolo) -> None:
    from vision_train.ultralytics_env import offline_ultralytics

    offline_ultralytics()
    from ultralytics import YOLO

    info = validate_yolo_dataset(trained_yolo.dataset)
    ours = evaluate_onnx(trained_yolo.onnx, info)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = YOLO(str(trained_yolo.onnx), task="detect").val(
            data=str(trained_yolo.run_dir / "dataset.yaml"),
            imgsz=trained_yolo.imgsz,
            batch=1,
            conf=0.001,
            iou=0.7,
            plots=False,
            device="cpu",
            verbose=False,
            project=str(trained_yolo.run_dir),
            name="val",
            exist_ok=True,
        )
    print(
        f"mAP50 ours {ours.map50:.4f} ultralytics {theirs.box.map50:.4f}; mAP50-95 ours {ours.map50_95:.4f} ultralytics {theirs.box.map:.4f}"
    )
    assert ours.map50 > 0.15, (
        "the shared model should detect the shapes (an untrained one scores 0)"
    )
    assert abs(ours.map50 - theirs.box.map50) <= 0.02, (ours.map50, theirs.box.map50)
    assert abs(ours.map50_95 - theirs.box.map) <= 0.03, (ours.map50_95, theirs.box.map)


@pytest.mark.slow
def test_trained_run_records_fp32_and_int8_figures(trained_yolo: TrainedYolo) -> None:
    m = json.loads((trained_yolo.run_dir / "metrics.json").read_text())["metrics"]
    assert m["epochs_trained"] == 14 and m["best_map50"] > 0.15
    assert m["fp32"]["map50"] > 0.15
    # static INT8 with the head kept in float must not collapse the confidences
    assert m["fp32"]["map50"] - m["int8"]["map50"] < 0.1, (m["fp32"]["map50"], m["int8"]["map50"])


def test_ap_of_a_perfect_ranking_is_0995_as_in_ultralytics() -> None:
    # the 101-point COCO interpolation ends on the (1.0, 0.0) sentinel, as ultralytics does
    assert compute_ap(np.array([0.5, 1.0]), np.array([1.0, 1.0])) == pytest.approx(0.995, abs=1e-6)


def test_metrics_count_matches_per_class() -> None:
    acc = MetricAccumulator({0: "a", 1: "b"})
    truth = np.array([[0, 0, 10, 10], [20, 20, 30, 30]], float)
    # one hit for class a, a wrong-class box on b's object, and a false positive
    acc.add(
        np.array([[0, 0, 10, 10], [20, 20, 30, 30], [50, 50, 60, 60]], float),
        np.array([0.9, 0.8, 0.7]),
        np.array([0, 0, 0]),
        truth,
        np.array([0, 1]),
    )
    m = acc.compute()
    assert m.per_class["a"]["ap50"] == pytest.approx(0.995, abs=1e-3)
    assert m.per_class["b"]["ap50"] == 0.0
    assert m.map50 == pytest.approx(0.5, abs=1e-2) and m.instances == 2 and m.predictions == 3
