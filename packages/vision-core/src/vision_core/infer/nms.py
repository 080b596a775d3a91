"""Greedy non-maximum suppression in NumPy, index-for-index equal to `torchvision.ops.nms`.

The greedy loop runs once per KEPT box and compares it with every remaining candidate in
one vectorised step, dropping the suppressed ones, so the work shrinks as it goes.
Arithmetic follows torchvision's CPU kernel (same dtype, same formula, the same strict
`IoU > threshold` compared in double precision), so ties and thresholds break the same way.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["batched_nms", "nms"]


def _as_float_boxes(boxes: npt.ArrayLike) -> np.ndarray:
    arr = np.asarray(boxes)
    if arr.dtype.kind != "f":
        arr = arr.astype(np.float32)
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise ValueError(f"boxes must have shape (N, 4), got {arr.shape}")
    return arr


def nms(
    boxes: npt.ArrayLike,
    scores: npt.ArrayLike,
    iou_threshold: float,
    *,
    max_keep: int | None = None,
) -> np.ndarray:
    """Indices (int64) of the boxes kept by greedy NMS, highest score first.

    boxes: (N, 4) x1, y1, x2, y2; scores: (N,). A box is dropped when its IoU with a kept,
    higher-scoring box is strictly greater than `iou_threshold`. `max_keep` stops once that
    many are kept (the result is the first `max_keep` of the full one).
    """
    b = _as_float_boxes(boxes)
    s = np.asarray(scores)
    if s.ndim != 1 or s.shape[0] != b.shape[0]:
        raise ValueError(f"scores must have shape ({b.shape[0]},), got {s.shape}")
    if b.shape[0] == 0:
        return np.empty(0, dtype=np.int64)
    if s.dtype != b.dtype:
        s = s.astype(b.dtype)

    order = np.argsort(-s, kind="stable")  # torch's CPU sort is stable: ties keep index order
    ob = b[order]
    x1 = np.ascontiguousarray(ob[:, 0])
    y1 = np.ascontiguousarray(ob[:, 1])
    x2 = np.ascontiguousarray(ob[:, 2])
    y2 = np.ascontiguousarray(ob[:, 3])
    areas = (x2 - x1) * (y2 - y1)
    pos = np.arange(order.shape[0])  # position in `order` of each remaining candidate
    thr = np.float64(iou_threshold)  # the kernel compares a float ovr with a double threshold
    zero = b.dtype.type(0)

    keep: list[int] = []
    p, n = 0, pos.shape[0]
    with np.errstate(divide="ignore", invalid="ignore"):  # degenerate boxes: 0/0 keeps, as torch
        while p < n:
            keep.append(int(pos[p]))
            q = p + 1
            if q == n or len(keep) == max_keep:
                break
            w = np.minimum(x2[p], x2[q:]) - np.maximum(x1[p], x1[q:])
            h = np.minimum(y2[p], y2[q:]) - np.maximum(y1[p], y1[q:])
            inter = np.maximum(zero, w) * np.maximum(zero, h)
            suppressed = inter / (areas[p] + areas[q:] - inter) > thr
            if suppressed.any():  # compact the survivors; otherwise just move on
                alive = ~suppressed
                x1, y1, x2, y2 = x1[q:][alive], y1[q:][alive], x2[q:][alive], y2[q:][alive]
                areas, pos = areas[q:][alive], pos[q:][alive]
                p, n = 0, pos.shape[0]
            else:
                p = q
    return order[np.asarray(keep, dtype=np.int64)].astype(np.int64, copy=False)


def batched_nms(
    boxes: npt.ArrayLike,
    scores: npt.ArrayLike,
    class_ids: npt.ArrayLike,
    iou_threshold: float,
    *,
    agnostic: bool = False,
    max_wh: float | None = None,
    max_keep: int | None = None,
) -> np.ndarray:
    """NMS within each class (or across classes when `agnostic`), highest score first.

    Classes are separated by shifting each box by `class_id * offset`, where offset is
    `max_wh` (ultralytics uses 7680) or, when None, the largest coordinate plus one
    (torchvision's `batched_nms`). `max_keep` as in `nms`.
    """
    b = _as_float_boxes(boxes)
    if b.shape[0] == 0:
        return np.empty(0, dtype=np.int64)
    if agnostic:
        return nms(b, scores, iou_threshold, max_keep=max_keep)
    c = np.asarray(class_ids)
    if c.shape != (b.shape[0],):
        raise ValueError(f"class_ids must have shape ({b.shape[0]},), got {c.shape}")
    offset = b.max() + 1 if max_wh is None else b.dtype.type(max_wh)
    shifted = b + (c.astype(b.dtype) * offset)[:, None]
    return nms(shifted, scores, iou_threshold, max_keep=max_keep)
