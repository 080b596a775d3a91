"""Runtimes: the same adapters on ONNX Runtime and OpenVINO, the YOLO layout, the errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.fixtures.trained import TrainedYolo
from vision_core.errors import ConfigError, ModelLoadError
from vision_core.infer import (
    YoloDetector,
    create_session,
    load_detector,
    open_runner,
    read_yolo_layout,
)
from vision_core.infer.runner import OrtRunner
from vision_core.infer.runtimes import int8_model_for, runtime_for_file, runtime_precisions
from vision_core.infer.tune import agreement
from vision_core.media import list_images, read_image
from vision_core.synth import render_scene
from vision_core.types import Detection

openvino = pytest.importorskip("openvino")  # the dev environment has the extra


def _images(trained: TrainedYolo, n: int = 12) -> list[np.ndarray]:
    return [read_image(p) for p in list_images(trained.dataset / "images" / "val")[:n]]


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_yolo_detections_agree_between_runtimes_on_fixed_images(
    trained_yolo: TrainedYolo, precision: str
) -> None:
    if precision not in runtime_precisions("openvino"):
        pytest.skip(f"this CPU has no {precision} in OpenVINO")
    images = _images(trained_yolo)
    ort_det = load_detector(trained_yolo.onnx)
    ov_det = load_detector(trained_yolo.onnx, runtime="openvino", precision=precision)
    assert isinstance(ov_det, YoloDetector) and ov_det.runner.runtime == "openvino"
    assert ov_det.class_names == ort_det.class_names  # metadata read through OpenVINO
    ref = [ort_det.predict(im) for im in images]
    got = [ov_det.predict(im) for im in images]
    assert sum(map(len, ref)) >= len(images) // 2  # a trained model: real detections to compare
    assert agreement(ref, got) >= 0.95
    if precision == "fp32":  # same graph, same float maths: scores and boxes within noise
        for a, b in zip(ref, got, strict=True):
            assert [d.class_id for d in a] == [d.class_id for d in b]
            for da, db in zip(a, b, strict=True):
                assert abs(da.score - db.score) < 1e-3
                assert np.allclose(da.xyxy, db.xyxy, atol=0.05)
    batched = ov_det.predict_batch(images[:3])  # the same adapter code batches on OpenVINO
    assert agreement(ref[:3], batched) == 1.0


@pytest.mark.slow
def test_dynamic_yolo_and_faster_rcnn_run_on_openvino(
    tiny_yolo_onnx_dynamic: Path, tiny_faster_rcnn: object
) -> None:
    image = np.asarray(render_scene(np.random.default_rng(0), 220, 150, 4)[0])
    ref = load_detector(tiny_yolo_onnx_dynamic, conf=0.001).predict(image)
    got = load_detector(tiny_yolo_onnx_dynamic, conf=0.001, runtime="openvino").predict(image)
    assert ref and agreement([ref], [got]) >= 0.95
    frcnn = tiny_faster_rcnn.onnx_dynamic  # type: ignore[attr-defined]
    ref = load_detector(frcnn, conf=0.0).predict(image)
    got = load_detector(frcnn, conf=0.0, runtime="openvino").predict(image)
    assert len(ref) > 10 and agreement([ref], [got]) >= 0.95


@pytest.mark.slow
def test_yolo_layout_is_read_alike_from_either_runtime(
    tiny_yolo_onnx: Path, tiny_yolo_onnx_dynamic: Path
) -> None:
    fixed = read_yolo_layout(OrtRunner(create_session(tiny_yolo_onnx)))
    assert (fixed.input_size, fixed.batch, fixed.nc, fixed.end2end) == ((160, 160), 1, 3, False)
    assert fixed.names == {0: "circle", 1: "square", 2: "triangle"} and fixed.output_channels == 7
    dynamic = read_yolo_layout(open_runner(tiny_yolo_onnx_dynamic), imgsz=320)
    assert dynamic.dynamic and dynamic.batch is None and dynamic.imgsz == 320
    assert read_yolo_layout(open_runner(tiny_yolo_onnx_dynamic)).imgsz == 160  # metadata
    for path in (tiny_yolo_onnx, tiny_yolo_onnx_dynamic):
        assert read_yolo_layout(open_runner(path, runtime="openvino")) == read_yolo_layout(
            open_runner(path)
        )


@pytest.mark.slow
def test_int8_precision_runs_the_int8_model_beside(trained_yolo: TrainedYolo) -> None:
    assert int8_model_for(trained_yolo.onnx, "onnxruntime") == trained_yolo.onnx_int8
    for runtime in ("onnxruntime", "openvino"):
        det = load_detector(trained_yolo.onnx, runtime=runtime, precision="int8")
        assert Path(det.model_path) == trained_yolo.onnx_int8  # type: ignore[attr-defined]
        assert det.runner.precision == "int8"  # type: ignore[attr-defined]
        assert det.predict(_images(trained_yolo, 1)[0]) is not None


def test_runtime_of_a_file() -> None:
    assert runtime_for_file("m/model-int8.xml") == "openvino"
    assert runtime_for_file("m/model.onnx") == "onnxruntime"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"runtime": "tensorrt"}, ConfigError, "infer.runtime: unknown runtime 'tensorrt'"),
        ({"precision": "int4"}, ConfigError, "infer.precision: unknown precision 'int4'"),
        ({"precision": "bf16"}, ConfigError, "bf16/fp16 need infer.runtime = openvino"),
        ({"precision": "int8"}, ModelLoadError, "no INT8 model beside"),
        ({"runtime": "openvino", "provider": "cuda"}, ConfigError, "runs on the CPU"),
    ],
)
def test_open_runner_refuses_what_it_cannot_run(
    tiny_yolo_onnx: Path, kwargs: dict[str, str], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        open_runner(tiny_yolo_onnx, **kwargs)


def test_openvino_reports_a_bad_file_clearly(tmp_path: Path) -> None:
    fake = tmp_path / "fake.onnx"
    fake.write_bytes(b"not a model at all")
    with pytest.raises(ModelLoadError, match=r"fake\.onnx is not a valid ONNX model"):
        open_runner(fake, runtime="openvino")
    with pytest.raises(ModelLoadError, match="model file not found"):
        open_runner(tmp_path / "missing.onnx", runtime="openvino")


def _det(cls: int, box: tuple[float, float, float, float]) -> Detection:
    return Detection(class_id=cls, class_name=str(cls), score=0.9, xyxy=box)


A = _det(0, (10, 10, 110, 110))
B = _det(1, (200, 200, 260, 280))


@pytest.mark.parametrize(
    ("ref", "got", "want"),
    [
        ([[A, B]], [[B, A]], 1.0),  # order does not matter
        ([[]], [[]], 1.0),
        ([[A]], [[_det(0, (12, 11, 111, 112))]], 1.0),  # IoU ~0.95
        ([[A]], [[_det(0, (20, 20, 120, 120))]], 0.0),  # IoU ~0.68 < 0.9
        ([[A]], [[_det(2, A.xyxy)]], 0.0),  # another class
        ([[A, B]], [[A]], 0.5),  # a missing detection
        ([[A]], [[A, B]], 0.5),  # an extra one
        ([[A], [B]], [[A], []], 0.5),  # pooled over frames
        ([[A, A]], [[A]], 0.5),  # one-to-one: one box matches once
    ],
)
def test_agreement_matches_one_to_one_at_iou_09_same_class(
    ref: list[list[Detection]], got: list[list[Detection]], want: float
) -> None:
    assert agreement(ref, got) == pytest.approx(want)
