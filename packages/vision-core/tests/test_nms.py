"""NumPy NMS against torchvision's CPU kernel: same kept indices, same order."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
import torchvision

from vision_core.geometry import box_iou
from vision_core.infer import batched_nms, nms


def _random_boxes(seed: int, n: int, *, ties: bool = False) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    # clustered like detector output, plus a uniform spread
    centers = rng.uniform(0, 640, (max(n // 40, 1), 2))
    xy = centers[rng.integers(0, len(centers), n)] + rng.normal(0, 12, (n, 2))
    xy[: n // 3] = rng.uniform(0, 640, (n // 3, 2))
    wh = rng.uniform(4, 160, (n, 2))
    boxes = np.concatenate([xy, xy + wh], axis=1).astype(np.float32)
    scores = rng.random(n).astype(np.float32)
    if ties:
        scores = np.round(scores, 2).astype(np.float32)  # many equal scores
    return boxes, scores


def _torch_nms(boxes: np.ndarray, scores: np.ndarray, thr: float) -> np.ndarray:
    return torchvision.ops.nms(torch.from_numpy(boxes), torch.from_numpy(scores), thr).numpy()


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("thr", [0.3, 0.45, 0.5, 0.7, 0.9])
def test_nms_matches_torchvision(seed: int, thr: float) -> None:
    boxes, scores = _random_boxes(seed, 2500 + 500 * seed, ties=seed % 2 == 1)
    ours = nms(boxes, scores, thr)
    ref = _torch_nms(boxes, scores, thr)
    assert ours.dtype == np.int64
    assert 0 < len(ref) < len(boxes)  # the case is not trivial
    np.testing.assert_array_equal(ours, ref)


def test_nms_float64_and_degenerate_boxes_match_torchvision() -> None:
    boxes, scores = _random_boxes(7, 800)
    boxes[::17, 2] = boxes[::17, 0]  # zero width: 0/0 IoU against another empty box
    boxes[::29, 3] = boxes[::29, 1]
    b64, s64 = boxes.astype(np.float64), scores.astype(np.float64)
    np.testing.assert_array_equal(nms(b64, s64, 0.5), _torch_nms(b64, s64, 0.5))
    np.testing.assert_array_equal(nms(boxes, scores, 0.5), _torch_nms(boxes, scores, 0.5))


def test_nms_threshold_is_strict() -> None:
    # IoU of these two boxes is exactly 0.5
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 5]], dtype=np.float32)
    scores = np.array([0.9, 0.8], dtype=np.float32)
    np.testing.assert_array_equal(nms(boxes, scores, 0.5), [0, 1])
    np.testing.assert_array_equal(nms(boxes, scores, 0.49), [0])
    np.testing.assert_array_equal(_torch_nms(boxes, scores, 0.5), [0, 1])


def test_nms_empty_and_bad_shapes() -> None:
    empty = nms(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), 0.5)
    assert empty.shape == (0,) and empty.dtype == np.int64
    assert batched_nms(np.zeros((0, 4)), np.zeros(0), np.zeros(0, int), 0.5).shape == (0,)
    with pytest.raises(ValueError, match="shape"):
        nms(np.zeros((3, 5)), np.zeros(3), 0.5)
    with pytest.raises(ValueError, match="scores"):
        nms(np.zeros((3, 4)), np.zeros(2), 0.5)


def test_nms_integer_boxes_are_accepted() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]])
    np.testing.assert_array_equal(nms(boxes, np.array([0.5, 0.9, 0.1]), 0.5), [1, 2])


@pytest.mark.parametrize("seed", [0, 1])
def test_batched_nms_matches_torchvision_per_class(seed: int) -> None:
    boxes, scores = _random_boxes(seed + 10, 3000)
    classes = np.random.default_rng(seed).integers(0, 6, len(boxes))
    ours = batched_nms(boxes, scores, classes, 0.5)
    ref = torchvision.ops.batched_nms(
        torch.from_numpy(boxes), torch.from_numpy(scores), torch.from_numpy(classes), 0.5
    ).numpy()
    assert set(ours.tolist()) == set(ref.tolist())
    assert np.all(np.diff(scores[ours]) <= 0)  # highest score first
    # the same as running plain NMS class by class
    per_class = np.concatenate(
        [
            np.flatnonzero(classes == c)[nms(boxes[classes == c], scores[classes == c], 0.5)]
            for c in range(6)
        ]
    )
    assert set(ours.tolist()) == set(per_class.tolist())
    # the ultralytics offset gives the same result on these coordinates
    np.testing.assert_array_equal(batched_nms(boxes, scores, classes, 0.5, max_wh=7680), ours)


def test_batched_nms_agnostic_and_class_separation() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [0, 0, 10, 10]], dtype=np.float32)
    scores = np.array([0.9, 0.8, 0.7], dtype=np.float32)
    classes = np.array([0, 0, 1])
    np.testing.assert_array_equal(batched_nms(boxes, scores, classes, 0.5), [0, 2])
    np.testing.assert_array_equal(batched_nms(boxes, scores, classes, 0.5, agnostic=True), [0])
    big, big_scores = _random_boxes(3, 1000)
    cls = np.zeros(len(big), dtype=np.int64)
    np.testing.assert_array_equal(
        batched_nms(big, big_scores, cls, 0.6, agnostic=True), nms(big, big_scores, 0.6)
    )


def test_nms_is_fast_for_thousands_of_boxes() -> None:
    boxes, scores = _random_boxes(5, 4000)
    start = time.perf_counter()
    keep = nms(boxes, scores, 0.7)
    elapsed = time.perf_counter() - start
    assert len(keep) > 100
    assert elapsed < 2.0, f"nms of 4000 boxes took {elapsed:.2f}s"


def test_box_iou_matches_torchvision() -> None:
    a, _ = _random_boxes(1, 50)
    b, _ = _random_boxes(2, 70)
    ref = torchvision.ops.box_iou(torch.from_numpy(a), torch.from_numpy(b)).numpy()
    np.testing.assert_allclose(box_iou(a, b), ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("max_keep", [1, 7, 300, 10_000])
def test_max_keep_is_a_prefix_of_the_full_result(max_keep: int) -> None:
    boxes, scores = _random_boxes(4, 2000)
    full = nms(boxes, scores, 0.5)
    np.testing.assert_array_equal(nms(boxes, scores, 0.5, max_keep=max_keep), full[:max_keep])
    classes = np.arange(len(boxes)) % 4
    np.testing.assert_array_equal(
        batched_nms(boxes, scores, classes, 0.5, max_keep=max_keep),
        batched_nms(boxes, scores, classes, 0.5)[:max_keep],
    )
