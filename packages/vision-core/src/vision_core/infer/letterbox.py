"""Letterbox resize (ultralytics' `LetterBox`, centred) and the way back to original pixels."""

from __future__ import annotations

from typing import NamedTuple

import cv2
import numpy as np

__all__ = ["Letterboxed", "clip_boxes", "letterbox", "letterbox_params", "scale_boxes"]


class Letterboxed(NamedTuple):
    """A letterboxed image, its resize ratio (new / old) and its (left, top) padding."""

    image: np.ndarray
    ratio: float
    pad: tuple[int, int]


class _Params(NamedTuple):
    ratio: float
    new_unpad: tuple[int, int]  # (w, h) of the resized content
    left: int
    right: int
    top: int
    bottom: int


def letterbox_params(
    shape: tuple[int, int],
    new_shape: int | tuple[int, int],
    *,
    stride: int = 32,
    auto: bool = False,
    scaleup: bool = True,
) -> _Params:
    """Resize and padding of an image of `shape` (h, w), exactly as ultralytics computes them."""
    if isinstance(new_shape, int):
        new_shape = (new_shape, new_shape)
    h, w = shape
    r = min(new_shape[0] / h, new_shape[1] / w)
    if not scaleup:
        r = min(r, 1.0)
    new_unpad = (max(round(w * r), 1), max(round(h * r), 1))
    dw, dh = new_shape[1] - new_unpad[0], new_shape[0] - new_unpad[1]
    if auto:  # minimal rectangle: pad only up to the next multiple of stride
        dw, dh = dw % stride, dh % stride
    half_w, half_h = dw / 2, dh / 2
    return _Params(
        ratio=r,
        new_unpad=new_unpad,
        left=round(half_w - 0.1),
        right=round(half_w + 0.1),
        top=round(half_h - 0.1),
        bottom=round(half_h + 0.1),
    )


def letterbox(
    img: np.ndarray,
    new_shape: int | tuple[int, int] = (640, 640),
    *,
    stride: int = 32,
    auto: bool = False,
    color: tuple[int, int, int] = (114, 114, 114),
    scaleup: bool = True,
) -> Letterboxed:
    """Resize `img` (H, W, C) keeping its aspect ratio, then pad it centred to `new_shape` (h, w).

    With `auto`, pad only to the next multiple of `stride` (rectangular inference). The
    input is never modified; when no resize or padding is needed it is returned as is.
    """
    p = letterbox_params(img.shape[:2], new_shape, stride=stride, auto=auto, scaleup=scaleup)
    out = img
    if (img.shape[1], img.shape[0]) != p.new_unpad:
        out = cv2.resize(img, p.new_unpad, interpolation=cv2.INTER_LINEAR)
    if p.top or p.bottom or p.left or p.right:
        out = cv2.copyMakeBorder(
            out, p.top, p.bottom, p.left, p.right, cv2.BORDER_CONSTANT, value=color
        )
    return Letterboxed(out, p.ratio, (p.left, p.top))


def clip_boxes(boxes: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Clip xyxy boxes in place to an image of `shape` (h, w); returns `boxes`."""
    h, w = shape[:2]
    np.clip(boxes[..., 0::2], 0, w, out=boxes[..., 0::2])
    np.clip(boxes[..., 1::2], 0, h, out=boxes[..., 1::2])
    return boxes


def scale_boxes(
    boxes: np.ndarray,
    orig_shape: tuple[int, int],
    ratio: float,
    pad: tuple[int, int],
    *,
    clip: bool = True,
) -> np.ndarray:
    """Map xyxy boxes from letterboxed pixels back to the original image, in place.

    Same as ultralytics `scale_boxes`: subtract the padding, divide by the per-axis gain of
    the rounded resize, clip to `orig_shape` (h, w). Returns `boxes`.
    """
    h0, w0 = orig_shape[:2]
    gain_x = max(round(w0 * ratio), 1) / w0
    gain_y = max(round(h0 * ratio), 1) / h0
    pad_x, pad_y = pad
    boxes[..., 0::2] -= pad_x
    boxes[..., 1::2] -= pad_y
    boxes[..., 0::2] /= gain_x
    boxes[..., 1::2] /= gain_y
    return clip_boxes(boxes, (h0, w0)) if clip else boxes
