"""FasterRCNNDetector on a torchvision Faster R-CNN ONNX export, against the torch model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnx
import pytest

from tests.fixtures.models import TinyFasterRCNN
from vision_core.errors import InferenceError
from vision_core.infer import (
    Detector,
    FasterRCNNDetector,
    YoloDetector,
    create_session,
    detect_arch,
    load_detector,
)
from vision_core.synth import render_scene
from vision_core.types import Detection


@pytest.fixture(scope="module")
def session(tiny_faster_rcnn: TinyFasterRCNN) -> Any:
    """One ONNX Runtime session of the dynamic export, shared by the detectors below."""
    return create_session(tiny_faster_rcnn.onnx_dynamic)


def _image(w: int, h: int, seed: int = 4) -> np.ndarray:
    return np.asarray(render_scene(np.random.default_rng(seed), w, h, 4)[0])


def _torch_predict(model: Any, bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The eager torch model on the same image (RGB 0..1), no ONNX involved."""
    import torch

    rgb = np.ascontiguousarray(bgr[..., ::-1].transpose(2, 0, 1)).astype(np.float32) / 255
    with torch.no_grad():
        out = model([torch.from_numpy(rgb)])[0]
    return out["boxes"].numpy(), out["labels"].numpy(), out["scores"].numpy()


def _matched(
    dets: list[Detection],
    ref: tuple[np.ndarray, np.ndarray, np.ndarray],
    names: dict[int, str],
    *,
    box_tol: float,
    score_tol: float = 1e-3,
) -> int:
    """One-to-one matches: same label and name, scores within score_tol, corners within box_tol.

    Matching (not row-by-row) because near-equal scores of an untrained model may swap order.
    """
    boxes, labels, scores = ref
    free = set(range(len(boxes)))
    matched = 0
    for d in dets:
        for j in sorted(free, key=lambda k: abs(float(scores[k]) - d.score)):
            if (
                d.class_id == labels[j] - 1
                and d.class_name == names[int(labels[j]) - 1]
                and abs(d.score - float(scores[j])) <= score_tol
                and np.abs(np.array(d.xyxy) - boxes[j]).max() <= box_tol
            ):
                free.discard(j)
                matched += 1
                break
    return matched


@pytest.mark.slow
@pytest.mark.parametrize("size", [(160, 128), (200, 150), (96, 144), (400, 320)])
def test_matches_torch_model(
    size: tuple[int, int], tiny_faster_rcnn: TinyFasterRCNN, session: Any
) -> None:
    det = FasterRCNNDetector(session, conf=0.0, max_det=300)
    assert det.model_path == str(tiny_faster_rcnn.onnx_dynamic)
    assert isinstance(det, Detector)
    assert det.dynamic is True and det.input_size is None
    assert det.class_names == tiny_faster_rcnn.names
    assert (det.min_size, det.max_size) == (160, 160)
    img = _image(*size)
    ref = _torch_predict(tiny_faster_rcnn.model, img)
    dets = det.predict(img)
    n = _matched(dets, ref, tiny_faster_rcnn.names, box_tol=0.05)
    print(f"\n{size}: {n}/{len(ref[0])} torch detections matched ({len(dets)} from ONNX)")
    assert len(ref[0]) >= 20
    assert len(dets) == len(ref[0])
    assert n >= 0.95 * len(ref[0])
    np.testing.assert_allclose([d.score for d in dets], ref[2], atol=1e-3)  # same ranking


@pytest.mark.slow
def test_fixed_input_resizes_and_maps_back(tiny_faster_rcnn: TinyFasterRCNN) -> None:
    det = FasterRCNNDetector(tiny_faster_rcnn.onnx_fixed, conf=0.0)
    h, w = tiny_faster_rcnn.fixed_hw
    assert det.dynamic is False and det.input_size == (h, w)
    img = _image(320, 256)  # twice the fixed size
    tensor = det.to_tensor(img)
    assert tensor.shape == (3, h, w)
    unit = cv2.resize(img.astype(np.float32) / 255, (w, h), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_allclose(tensor, unit[..., ::-1].transpose(2, 0, 1), atol=1e-6)
    import torch

    with torch.no_grad():  # the eager model on that same resized image
        out = tiny_faster_rcnn.model([torch.from_numpy(tensor)])[0]
    scale = np.array([320 / w, 256 / h, 320 / w, 256 / h], dtype=np.float32)
    ref = (out["boxes"].numpy() * scale, out["labels"].numpy(), out["scores"].numpy())
    dets = det.predict(img)
    n = _matched(dets, ref, tiny_faster_rcnn.names, box_tol=0.1)
    print(f"\nfixed input: {n}/{len(ref[0])} torch detections matched ({len(dets)} from ONNX)")
    assert len(ref[0]) >= 20 and len(dets) == len(ref[0])
    assert n >= 0.95 * len(dets), f"{n}/{len(dets)}"


@pytest.mark.slow
def test_conf_max_det_clip_and_class_map(tiny_faster_rcnn: TinyFasterRCNN, session: Any) -> None:
    img = _image(200, 150)
    all_dets = FasterRCNNDetector(session, conf=0.0).predict(img)
    scores = np.array([d.score for d in all_dets])
    assert np.all(np.diff(scores) <= 0)
    cut = float(np.median(scores))
    above = FasterRCNNDetector(session, conf=cut).predict(img)
    assert len(above) == int((scores > cut).sum()) and all(d.score > cut for d in above)
    top = FasterRCNNDetector(session, conf=0.0, max_det=5).predict(img)
    assert top == all_dets[:5]
    for d in all_dets:
        x1, y1, x2, y2 = d.xyxy
        assert 0 <= x1 <= x2 <= 200 and 0 <= y1 <= y2 <= 150
        assert d.class_id in (0, 1, 2)
    renamed = FasterRCNNDetector(session, conf=0.0, class_map={0: "c", 1: "s", 2: "t"}).predict(img)
    assert [d.class_name for d in renamed] == ["cst"[d.class_id] for d in all_dets]


@pytest.mark.slow
def test_batch_gray_and_bad_input(session: Any) -> None:
    det = FasterRCNNDetector(session, conf=0.0)
    images = [_image(160, 120, seed) for seed in range(3)]
    assert det.predict_batch(images) == [det.predict(im) for im in images]
    gray = cv2.cvtColor(images[0], cv2.COLOR_BGR2GRAY)
    assert det.predict(gray) == det.predict(cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR))
    with pytest.raises(InferenceError):
        det.predict(np.zeros((0, 5, 3), np.uint8))


@pytest.mark.slow
def test_factory_picks_faster_rcnn(tiny_faster_rcnn: TinyFasterRCNN, tmp_path: Path) -> None:
    det = load_detector(tiny_faster_rcnn.onnx_dynamic, conf=0.1, max_det=7)
    assert isinstance(det, FasterRCNNDetector) and not isinstance(det, YoloDetector)
    assert det.conf == 0.1 and det.max_det == 7
    # without metadata the three outputs give it away; names fall back to class_<id>
    proto = onnx.load(str(tiny_faster_rcnn.onnx_dynamic))
    del proto.metadata_props[:]
    bare = tmp_path / "bare.onnx"
    onnx.save(proto, str(bare))
    assert detect_arch(create_session(bare)) == "faster_rcnn"
    plain = load_detector(bare, conf=0.0)
    assert isinstance(plain, FasterRCNNDetector)
    assert {d.class_name for d in plain.predict(_image(160, 120))} <= {
        "class_0",
        "class_1",
        "class_2",
    }
