"""YoloDetector on real ultralytics ONNX exports, checked against ultralytics' own predictor."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from vision_core.config import InferSection, PipelineConfig
from vision_core.errors import InferenceError, ModelLoadError
from vision_core.geometry import box_iou
from vision_core.infer import (
    Detector,
    YoloDetector,
    create_session,
    detect_arch,
    detector_from_config,
    load_detector,
    read_metadata,
)
from vision_core.infer.base import parse_names
from vision_core.synth import render_scene
from vision_core.types import Detection

LOW_CONF = 0.001  # an (almost) untrained model: low scores, but many of them
NAMES = {0: "circle", 1: "square", 2: "triangle"}


def _assets() -> list[np.ndarray]:
    import ultralytics

    folder = Path(ultralytics.__file__).parent / "assets"
    return [cv2.imread(str(folder / name)) for name in ("bus.jpg", "zidane.jpg")]


def _synthetic() -> list[np.ndarray]:
    rng = np.random.default_rng(11)
    sizes = [(320, 200), (180, 240), (160, 160), (500, 90)]
    return [np.asarray(render_scene(rng, w, h, 4)[0]) for w, h in sizes]


def _match(ours: Sequence[Detection], boxes: np.ndarray, classes: np.ndarray) -> int:
    """Greedy one-to-one matches at IoU >= 0.9 with the same class."""
    if not ours or not len(boxes):
        return 0
    iou = box_iou(np.array([d.xyxy for d in ours]), boxes)
    same = np.array([d.class_id for d in ours])[:, None] == classes[None, :]
    iou = np.where(same, iou, 0.0)
    matched = 0
    while True:
        i, j = np.unravel_index(np.argmax(iou), iou.shape)
        if iou[i, j] < 0.9:
            return matched
        matched += 1
        iou[i, :] = 0.0
        iou[:, j] = 0.0


def _agreement(model: Path, images: list[np.ndarray]) -> tuple[int, int]:
    from ultralytics import YOLO

    ours_det = YoloDetector(model, conf=LOW_CONF)
    ref_model = YOLO(str(model), task="detect")
    matched = total = 0
    for img in images:
        ours = ours_det.predict(img)
        ref = ref_model.predict(
            img, conf=LOW_CONF, iou=0.7, imgsz=160, device="cpu", verbose=False
        )[0]
        boxes = ref.boxes.xyxy.numpy()
        classes = ref.boxes.cls.numpy().astype(int)
        matched += _match(ours, boxes, classes)
        total += max(len(ours), len(boxes))
    return matched, total


# -- agreement with ultralytics ---------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("which", ["fixed", "dynamic"])
def test_agrees_with_ultralytics_predict(
    which: str, tiny_yolo_onnx: Path, tiny_yolo_onnx_dynamic: Path
) -> None:
    model = tiny_yolo_onnx if which == "fixed" else tiny_yolo_onnx_dynamic
    matched, total = _agreement(model, _assets() + _synthetic())
    print(f"\n{which}: {matched}/{total} detections matched (IoU >= 0.9, same class)")
    assert total >= 20
    assert matched >= 0.95 * total, f"{matched}/{total}"


@pytest.mark.slow
def test_fixed_model_properties(tiny_yolo_onnx: Path) -> None:
    det = YoloDetector(tiny_yolo_onnx)
    assert isinstance(det, Detector)
    assert det.dynamic is False and det.input_size == (160, 160)
    assert det.class_names == NAMES
    assert det.model_path == str(tiny_yolo_onnx)
    img = _synthetic()[0]
    assert det.letterbox(img).image.shape == (160, 160, 3)
    tensor = det.to_tensor([det.letterbox(img).image])
    assert tensor.shape == (1, 3, 160, 160) and tensor.dtype == np.float32
    assert tensor.min() >= 0.0 and tensor.max() <= 1.0


@pytest.mark.slow
def test_dynamic_model_uses_rectangular_input(tiny_yolo_onnx_dynamic: Path) -> None:
    det = YoloDetector(tiny_yolo_onnx_dynamic, conf=LOW_CONF)
    assert det.dynamic is True and det.input_size is None and det.imgsz == 160
    wide = _synthetic()[0]  # 200 x 320
    lb = det.letterbox(wide)
    assert lb.image.shape == (128, 160, 3)  # 100 rows of content padded to a multiple of 32
    raw = det.run(det.to_tensor([lb.image]))
    assert raw.shape[:2] == (1, 4 + 3)
    for img in [wide, *_assets()]:
        h, w = img.shape[:2]
        dets = det.predict(img)
        assert dets, "a low threshold gives detections"
        for d in dets:
            x1, y1, x2, y2 = d.xyxy
            assert 0 <= x1 <= x2 <= w and 0 <= y1 <= y2 <= h
            assert LOW_CONF < d.score <= 1.0
            assert d.class_name == NAMES[d.class_id]
        assert len(dets) <= 300


def _same(a: list[Detection], b: list[Detection]) -> None:
    assert len(a) == len(b)
    assert [d.class_id for d in a] == [d.class_id for d in b]
    np.testing.assert_allclose([d.xyxy for d in a], [d.xyxy for d in b], atol=1e-2)
    np.testing.assert_allclose([d.score for d in a], [d.score for d in b], atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("which", ["fixed", "dynamic"])
def test_batch_equals_single(
    which: str, tiny_yolo_onnx: Path, tiny_yolo_onnx_dynamic: Path
) -> None:
    det = YoloDetector(tiny_yolo_onnx if which == "fixed" else tiny_yolo_onnx_dynamic, conf=0.002)
    rng = np.random.default_rng(3)
    same_size = [np.asarray(render_scene(rng, 240, 180, 4)[0]) for _ in range(3)]
    images = [*same_size, *_synthetic(), *_assets()]
    batched = det.predict_batch(images)
    assert len(batched) == len(images)
    assert sum(len(b) for b in batched) >= 20
    for img, got in zip(images, batched, strict=True):
        _same(got, det.predict(img))
    assert det.predict_batch([]) == []


@pytest.mark.slow
def test_grayscale_and_bgra_inputs(tiny_yolo_onnx: Path) -> None:
    det = YoloDetector(tiny_yolo_onnx, conf=LOW_CONF)
    bgr = _synthetic()[1]
    gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    from_gray = det.predict(gray)
    assert from_gray
    _same(from_gray, det.predict(cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)))
    _same(det.predict(gray[..., None]), from_gray)
    bgra = cv2.cvtColor(bgr, cv2.COLOR_BGR2BGRA)
    bgra[..., 3] = 7  # alpha is ignored
    _same(det.predict(bgra), det.predict(bgr))
    _same(det.predict(bgr[:, ::-1]), det.predict(np.ascontiguousarray(bgr[:, ::-1])))


@pytest.mark.slow
@pytest.mark.parametrize(
    "bad",
    [
        None,
        np.zeros((0, 0, 3), np.uint8),
        np.zeros((10, 10, 2), np.uint8),
        np.zeros((10, 10, 3), np.float32),
        "image.jpg",
        np.zeros((2, 10, 10, 3), np.uint8),
    ],
)
def test_bad_images_raise_inference_error(bad: object, tiny_yolo_onnx: Path) -> None:
    det = YoloDetector(tiny_yolo_onnx)
    with pytest.raises(InferenceError):
        det.predict(bad)  # type: ignore[arg-type]


@pytest.mark.slow
def test_class_names_from_class_map_and_fallback(tiny_yolo_onnx: Path, tmp_path: Path) -> None:
    det = YoloDetector(tiny_yolo_onnx, conf=LOW_CONF, class_map={0: "ball", 2: "tri"})
    assert det.class_names == {0: "ball", 1: "square", 2: "tri"}
    assert {d.class_name for d in det.predict(_synthetic()[0])} <= {"ball", "square", "tri"}
    proto = onnx.load(str(tiny_yolo_onnx))
    del proto.metadata_props[:]
    bare = tmp_path / "bare.onnx"
    onnx.save(proto, str(bare))
    plain = YoloDetector(bare)
    assert plain.class_names == {0: "class_0", 1: "class_1", 2: "class_2"}
    assert plain.input_size == (160, 160) and plain.stride == 32
    assert detect_arch(create_session(bare)) == "yolo"  # from the output layout alone


def test_parse_names_never_evaluates_code() -> None:
    assert parse_names("{0: 'person', 1: 'car'}") == {0: "person", 1: "car"}
    assert parse_names('{"0": "person", "1": "car"}') == {0: "person", 1: "car"}
    assert parse_names("['a', 'b']") == {0: "a", 1: "b"}
    assert parse_names("__import__('os').system('echo pwned')") == {}
    assert parse_names("not names") == {}
    assert parse_names("{'x': 'y'}") == {}
    assert parse_names("") == {} and parse_names(None) == {}


# -- sessions, factory, config ----------------------------------------------------------


@pytest.mark.slow
def test_session_threads_metadata_and_cuda_fallback(
    tiny_yolo_onnx: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sess = create_session(tiny_yolo_onnx, threads=1)
    assert sess.get_providers() == ["CPUExecutionProvider"]
    meta = read_metadata(sess)
    assert meta["task"] == "detect" and parse_names(meta["names"]) == NAMES
    import onnxruntime as ort

    with caplog.at_level(logging.WARNING, logger="vision_core.infer.session"):
        cuda = create_session(tiny_yolo_onnx, provider="cuda")
    if "CUDAExecutionProvider" in ort.get_available_providers():
        assert cuda.get_providers()[0] == "CUDAExecutionProvider"
    else:
        assert cuda.get_providers() == ["CPUExecutionProvider"]
        assert "CUDAExecutionProvider" in caplog.text
    with pytest.raises(ValueError, match="provider"):
        create_session(tiny_yolo_onnx, provider="tpu")


@pytest.mark.slow
def test_load_detector_and_config(tiny_yolo_onnx: Path) -> None:
    det = load_detector(tiny_yolo_onnx, conf=0.5, iou=0.6, max_det=10, agnostic=True)
    assert isinstance(det, YoloDetector)
    assert (det.conf, det.iou, det.max_det, det.agnostic) == (0.5, 0.6, 10, True)
    cfg = PipelineConfig(
        infer=InferSection(model_path=str(tiny_yolo_onnx), conf=LOW_CONF, max_det=5, threads=1),
        class_map={0: "a", 1: "b", 2: "c"},
    )
    from_cfg = detector_from_config(cfg)
    assert isinstance(from_cfg, YoloDetector)
    assert from_cfg.class_names == {0: "a", 1: "b", 2: "c"} and from_cfg.max_det == 5
    dets = from_cfg.predict(_assets()[0])
    assert 1 <= len(dets) <= 5
    assert (
        detector_from_config(PipelineConfig(), model_path=str(tiny_yolo_onnx)).class_names == NAMES
    )
    with pytest.raises(ModelLoadError, match="model_path"):
        detector_from_config(PipelineConfig())


# -- broken models ----------------------------------------------------------------------


def test_missing_model_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "model.onnx"
    with pytest.raises(ModelLoadError, match="not found") as err:
        YoloDetector(missing)
    assert str(missing) in str(err.value)
    with pytest.raises(ModelLoadError, match="not found"):
        load_detector(missing)


def test_text_file_renamed_onnx(tmp_path: Path) -> None:
    fake = tmp_path / "model.onnx"
    fake.write_text("this is not a model\n" * 20, encoding="utf-8")
    with pytest.raises(ModelLoadError, match="not a valid ONNX model") as err:
        YoloDetector(fake)
    assert str(fake) in str(err.value)
    with pytest.raises(ModelLoadError):
        load_detector(fake)
    with pytest.raises(ModelLoadError, match="not a file"):
        create_session(tmp_path)


@pytest.mark.slow
def test_truncated_model(tiny_yolo_onnx: Path, tmp_path: Path) -> None:
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(tiny_yolo_onnx.read_bytes()[:5000])
    with pytest.raises(ModelLoadError) as err:
        YoloDetector(cut)
    assert str(cut) in str(err.value)


def _tiny_graph(
    path: Path, out_shape: list[int], *, batch: int = 1, meta: dict[str, str] | None = None
) -> Path:
    """images [batch, 3, 32, 32] -> output0 `out_shape`: the first values of each image's tensor.

    Per image, the output is the start of its RGB 0..1 tensor: row 0 of the R plane (the
    image's last BGR channel), then row 1, and so on.
    """
    per_image = int(np.prod(out_shape[1:]))
    flat = helper.make_node("Flatten", ["images"], ["flat"], axis=1)
    sl = helper.make_node("Slice", ["flat", "starts", "ends", "axes"], ["part"])
    rs = helper.make_node("Reshape", ["part", "shape"], ["output0"])
    inits = [
        helper.make_tensor("starts", TensorProto.INT64, [1], [0]),
        helper.make_tensor("ends", TensorProto.INT64, [1], [per_image]),
        helper.make_tensor("axes", TensorProto.INT64, [1], [1]),
        helper.make_tensor("shape", TensorProto.INT64, [len(out_shape)], out_shape),
    ]
    graph = helper.make_graph(
        [flat, sl, rs],
        "tiny",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [batch, 3, 32, 32])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, out_shape)],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    for key, value in (meta or {}).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def _two_box_image(score0: int = 204, score1: int = 230) -> np.ndarray:
    """For a (B, 4 + 2, 8) tiny graph: boxes 0 and 1 at (0.5, 0.5, 1.5, 1.5), classes 0 and 1."""
    img = np.zeros((32, 32, 3), np.uint8)
    for start in (0, 8, 16, 24):  # cx, cy, w, h of boxes 0 and 1 = 1.0
        img[0, start : start + 2, 2] = 255
    img[1, 0, 2] = score0  # class 0 score of box 0
    img[1, 9, 2] = score1  # class 1 score of box 1
    return img


def test_unknown_output_layout_2d(tmp_path: Path) -> None:
    path = _tiny_graph(tmp_path / "flat.onnx", [1, 84])
    with pytest.raises(ModelLoadError, match="3-D") as err:
        YoloDetector(path)
    assert str(path) in str(err.value) and "[1, 84]" in str(err.value)
    with pytest.raises(ModelLoadError, match="cannot tell") as err2:
        load_detector(path)
    assert str(path) in str(err2.value)


def test_output_channels_disagree_with_names(tmp_path: Path) -> None:
    path = _tiny_graph(tmp_path / "nc.onnx", [1, 10, 40], meta={"names": str(NAMES)})
    with pytest.raises(ModelLoadError, match="4 \\+ nc") as err:
        YoloDetector(path)
    assert str(path) in str(err.value) and "[1, 10, 40]" in str(err.value)


def test_minimal_yolo_graph_runs(tmp_path: Path) -> None:
    """A hand-made (1, 4 + 2, 8) output: decoding, NMS and mapping back, checked by hand."""
    path = _tiny_graph(tmp_path / "ok.onnx", [1, 6, 8])
    det = YoloDetector(path, conf=0.5, class_map={0: "a", 1: "b"})
    assert det.input_size == (32, 32) and det.nc == 2
    img = _two_box_image()
    dets = det.predict(img)
    # the same place but different classes: class-aware NMS keeps both, best score first
    assert [(d.class_name, round(d.score, 3)) for d in dets] == [("b", 0.902), ("a", 0.8)]
    np.testing.assert_allclose(dets[0].xyxy, (0.5, 0.5, 1.5, 1.5), atol=1e-6)
    agnostic = YoloDetector(path, conf=0.5, agnostic=True, class_map={0: "a", 1: "b"})
    assert [d.class_name for d in agnostic.predict(img)] == ["b"]
    assert [d.class_id for d in YoloDetector(path, conf=0.85).predict(img)] == [1]
    assert len(YoloDetector(path, conf=0.5, max_det=1).predict(img)) == 1
    shutil.copy(path, tmp_path / "copy.onnx")
    assert len(load_detector(tmp_path / "copy.onnx", conf=0.5).predict(img)) == 2


def test_fixed_batch_model_is_fed_full_batches(tmp_path: Path) -> None:
    path = _tiny_graph(tmp_path / "b2.onnx", [2, 6, 8], batch=2)
    det = YoloDetector(path, conf=0.5)
    images = [_two_box_image(), _two_box_image(0, 0), _two_box_image(255, 0)]
    got = det.predict_batch(images)  # runs as [0, 1] then [2, zero padding]
    assert [[(d.class_id, round(d.score, 3)) for d in r] for r in got] == [
        [(1, 0.902), (0, 0.8)],
        [],
        [(0, 1.0)],
    ]
    assert got == [det.predict(im) for im in images]


def test_end_to_end_output(tmp_path: Path) -> None:
    """(B, N, 6) rows x1, y1, x2, y2, score, class: no NMS, only conf and max_det."""
    path = _tiny_graph(tmp_path / "e2e.onnx", [1, 5, 6], meta={"end2end": "True"})
    img = np.zeros((32, 32, 3), np.uint8)
    img[0, 0:6, 2] = [51, 51, 255, 255, 230, 0]  # box (0.2, 0.2, 1, 1), 0.902, class 0
    img[0, 6:12, 2] = [51, 51, 255, 255, 102, 255]  # same box, 0.4, class 1
    dets = YoloDetector(path, conf=0.25).predict(img)
    assert [(d.class_id, d.class_name, round(d.score, 3)) for d in dets] == [
        (0, "class_0", 0.902),
        (1, "class_1", 0.4),
    ]
    np.testing.assert_allclose(dets[0].xyxy, (0.2, 0.2, 1.0, 1.0), atol=1e-6)
    assert len(YoloDetector(path, conf=0.5).predict(img)) == 1
    assert len(YoloDetector(path, conf=0.25, max_det=1).predict(img)) == 1
