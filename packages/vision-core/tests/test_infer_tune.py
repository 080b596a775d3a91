"""`infer.runtime = auto`: measured once per model and device, checked against FP32, cached."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.fixtures.trained import TrainedYolo
from vision_core.config import build_config
from vision_core.errors import ConfigError
from vision_core.infer import YoloDetector, detector_from_config
from vision_core.infer import tune as tune_mod
from vision_core.infer.tune import TuneOptions, candidates, tune, tune_from_config
from vision_core.media import list_images, read_image

pytest.importorskip("openvino")

FAST = {"tune_seconds": 0.3, "tune_frames": 6}


def _cfg(tmp_path: Path, trained: TrainedYolo, model: Path, **infer: Any) -> Any:
    return build_config(
        {
            "run": {"workdir": str(tmp_path / "wd")},
            "infer": {"model_path": str(model), **FAST, **infer},
            "data": {"yolo_dataset_dir": str(trained.dataset)},
        }
    )


@pytest.fixture
def model_copy(trained_model_dir: Path) -> Path:
    return trained_model_dir / "model.onnx"


@pytest.mark.slow
def test_auto_measures_checks_picks_and_caches(
    trained_yolo: TrainedYolo, model_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = _cfg(tmp_path, trained_yolo, model_copy, runtime="auto", precision="auto")
    first = tune_from_config(cfg, model_copy)
    assert not first.from_cache
    labels = {m.label for m in first.table}
    assert {"onnxruntime/fp32", "onnxruntime/int8", "openvino/fp32", "openvino/int8"} <= labels
    rows = {m.label: m for m in first.table}
    assert rows["onnxruntime/fp32"].passed and rows["onnxruntime/fp32"].agreement == 1.0
    for m in first.table:  # every candidate was timed and checked
        assert m.fps and m.fps > 0 and m.p50_ms and m.agreement is not None, m
        assert m.passed == (m.agreement >= 0.95)
    chosen = rows[f"{first.runtime}/{first.precision}"]
    assert chosen.passed and chosen.fps == max(m.fps or 0 for m in first.table if m.passed)
    cache = tmp_path / "wd" / "tune-cache.json"
    stored = json.loads(cache.read_text())
    assert stored[first.key]["runtime"] == first.runtime and len(stored[first.key]["table"]) == len(
        first.table
    )

    # a restart: the same model on the same device reads the choice and measures nothing
    def no_measuring(*a: Any, **k: Any) -> Any:
        raise AssertionError("measured again")

    monkeypatch.setattr(tune_mod, "_time_rounds", no_measuring)
    monkeypatch.setattr(tune_mod, "sample_frames", no_measuring)
    again = tune_from_config(cfg, model_copy)
    assert again.from_cache and (again.runtime, again.precision) == (first.runtime, first.precision)
    det = detector_from_config(cfg)  # what vision-edge and vision-server call
    assert isinstance(det, YoloDetector)
    assert (det.runner.runtime, det.runner.precision) == (first.runtime, first.precision)

    # another model (another hash) is measured anew
    monkeypatch.undo()
    import onnx

    proto = onnx.load(str(model_copy))
    proto.metadata_props.add(key="retrained", value="yes")  # another file, same graph
    onnx.save(proto, str(model_copy))
    assert not tune_from_config(cfg, model_copy).from_cache


@pytest.mark.slow
def test_a_candidate_that_disagrees_with_fp32_is_not_chosen(
    trained_yolo: TrainedYolo, model_copy: Path
) -> None:
    """A runtime whose detections are wrong (here: OpenVINO made to see the frame upside
    down) fails the check, however fast it is."""
    frames = [read_image(p) for p in list_images(trained_yolo.dataset / "images" / "val")[:8]]
    real_predict = YoloDetector.predict

    def predict(self: YoloDetector, image: np.ndarray) -> Any:
        if self.runner.runtime == "openvino":
            image = np.ascontiguousarray(image[::-1])
        return real_predict(self, image)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(YoloDetector, "predict", predict)
        result = tune(model_copy, frames, precision="fp32", options=TuneOptions(seconds=0.2))
    rows = {m.label: m for m in result.table}
    assert not rows["openvino/fp32"].passed and "agreement below" in rows["openvino/fp32"].note
    assert (result.runtime, result.precision) == ("onnxruntime", "fp32")


@pytest.mark.slow
def test_auto_checks_map50_on_a_val_set_when_given(
    trained_yolo: TrainedYolo, model_copy: Path, tmp_path: Path
) -> None:
    cfg = _cfg(
        tmp_path,
        trained_yolo,
        model_copy,
        runtime="onnxruntime",
        precision="auto",
        tune_val_dataset=str(trained_yolo.dataset),
        tune_max_map_drop=0.0,
    )
    result = tune_from_config(cfg, model_copy)
    rows = {m.label: m for m in result.table}
    assert set(rows) == {"onnxruntime/fp32", "onnxruntime/int8"}
    ref, int8 = rows["onnxruntime/fp32"], rows["onnxruntime/int8"]
    assert ref.map50 is not None and ref.map50 > 0.1 and int8.map50 is not None
    assert int8.passed == (int8.map50 >= ref.map50)  # tune_max_map_drop = 0


def test_one_candidate_is_taken_without_measuring(tiny_yolo_onnx: Path, tmp_path: Path) -> None:
    opts = TuneOptions(cache=tmp_path / "cache.json")
    result = tune(tiny_yolo_onnx, lambda: pytest.fail("read frames"), runtime="onnxruntime",
                  precision="auto", options=opts)  # fmt: skip
    assert (result.runtime, result.precision) == ("onnxruntime", "fp32")  # no -int8 beside
    assert not opts.cache.exists()  # type: ignore[union-attr]


def test_nothing_to_run_is_a_clear_error(tiny_yolo_onnx: Path) -> None:
    with pytest.raises(ConfigError, match=r"infer\.precision = 'int8': nothing to run"):
        candidates(tiny_yolo_onnx, "auto", "int8")
    assert [c.label for c in candidates(tiny_yolo_onnx, "openvino", "fp32")] == ["openvino/fp32"]


def test_an_unreadable_cache_is_measured_over(tiny_yolo_onnx: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache.json"
    cache.write_text("{ not json")
    frames = [np.full((120, 160, 3), 90, np.uint8)]
    result = tune(tiny_yolo_onnx, frames, precision="fp32", conf=0.001,
                  options=TuneOptions(seconds=0.1, cache=cache))  # fmt: skip
    assert not result.from_cache and result.key in json.loads(cache.read_text())
    print(result.format_table())
