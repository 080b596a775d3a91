"""Letterbox against ultralytics' LetterBox (pixel-equal) and the way back to original pixels."""

from __future__ import annotations

import numpy as np
import pytest

from vision_core.infer import letterbox, scale_boxes
from vision_core.infer.letterbox import clip_boxes

SHAPES = [(480, 640), (640, 480), (1080, 810), (100, 100), (333, 777), (37, 1500), (720, 1280)]
TARGETS = [(640, 640), (160, 160), (320, 256), (96, 224)]


def _image(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("auto", [False, True])
def test_letterbox_pixel_equal_to_ultralytics(
    shape: tuple[int, int], target: tuple[int, int], auto: bool
) -> None:
    from ultralytics.data.augment import LetterBox

    img = _image(*shape)
    ours = letterbox(img, target, stride=32, auto=auto)
    ref = LetterBox(target, auto=auto, stride=32)(image=img.copy())
    assert ours.image.shape == ref.shape
    np.testing.assert_array_equal(ours.image, ref)
    if not auto:
        assert ours.image.shape[:2] == target
    else:  # minimal rectangle: each side a multiple of the stride or the full target
        for side, full in zip(ours.image.shape[:2], target, strict=True):
            assert side % 32 == 0 or side == full
    assert ours.ratio == pytest.approx(min(target[0] / shape[0], target[1] / shape[1]))
    np.testing.assert_array_equal(img, _image(*shape))  # input untouched


def test_letterbox_int_shape_and_no_op() -> None:
    img = _image(64, 64)
    same = letterbox(img, 64)
    assert same.image is img and same.ratio == 1.0 and same.pad == (0, 0)
    padded = letterbox(_image(32, 64), 64, color=(1, 2, 3))
    assert padded.image.shape == (64, 64, 3) and padded.pad == (0, 16)
    np.testing.assert_array_equal(padded.image[0, 0], [1, 2, 3])
    np.testing.assert_array_equal(padded.image[63, 63], [1, 2, 3])


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("target", [(640, 640), (160, 160), (96, 224)])
def test_scale_boxes_matches_ultralytics(shape: tuple[int, int], target: tuple[int, int]) -> None:
    import torch
    from ultralytics.utils.ops import scale_boxes as ul_scale_boxes

    lb = letterbox(_image(*shape), target)
    rng = np.random.default_rng(1)
    xy = rng.uniform(-10, max(target), (50, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(1, 80, (50, 2))], axis=1).astype(np.float32)
    ours = scale_boxes(boxes.copy(), shape, lb.ratio, lb.pad)
    ref = ul_scale_boxes(target, torch.from_numpy(boxes.copy()), shape).numpy()
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-3)
    assert ours[:, 0::2].min() >= 0 and ours[:, 0::2].max() <= shape[1]
    assert ours[:, 1::2].min() >= 0 and ours[:, 1::2].max() <= shape[0]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("auto", [False, True])
def test_box_round_trip(shape: tuple[int, int], auto: bool) -> None:
    h, w = shape
    lb = letterbox(_image(h, w), (160, 160), auto=auto)
    rng = np.random.default_rng(2)
    x1 = rng.uniform(0, w * 0.8, 20)
    y1 = rng.uniform(0, h * 0.8, 20)
    orig = np.stack([x1, y1, x1 + w * 0.1, y1 + h * 0.1], axis=1)
    gain_x = max(round(w * lb.ratio), 1) / w
    gain_y = max(round(h * lb.ratio), 1) / h
    fwd = orig.copy()
    fwd[:, 0::2] = fwd[:, 0::2] * gain_x + lb.pad[0]
    fwd[:, 1::2] = fwd[:, 1::2] * gain_y + lb.pad[1]
    assert fwd[:, 0::2].max() <= lb.image.shape[1] and fwd[:, 1::2].max() <= lb.image.shape[0]
    back = scale_boxes(fwd, shape, lb.ratio, lb.pad)
    np.testing.assert_allclose(back, orig, rtol=1e-9, atol=1e-6)


def test_clip_boxes_in_place() -> None:
    boxes = np.array([[-5.0, -1.0, 120.0, 50.0], [10.0, 20.0, 30.0, 400.0]])
    out = clip_boxes(boxes, (100, 110))
    assert out is boxes
    np.testing.assert_array_equal(boxes, [[0, 0, 110, 50], [10, 20, 30, 100]])
