"""Box geometry shared by inference, metrics, labelling, synthetic data and tracking.

One `box_iou` for the whole code base: NMS, mAP matching, the label merge rule, the
synthetic scene generator and the tracker all compare boxes with it.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["box_iou"]


def box_iou(a: npt.ArrayLike, b: npt.ArrayLike) -> np.ndarray:
    """Pairwise IoU matrix (len(a), len(b)) of xyxy boxes, in float64.

    Boxes may be pixels or normalised (IoU is scale-free). A pair whose union is empty
    (two degenerate boxes) has IoU 0.
    """
    aa = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    bb = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    # coordinates as columns and rows of 2-D arrays: about twice as fast as broadcasting
    # (n, m, 2) corner arrays (the tracker calls this every frame)
    ax1, ay1, ax2, ay2 = (aa[:, k : k + 1] for k in range(4))
    bx1, by1, bx2, by2 = (bb[:, k] for k in range(4))
    iw = np.minimum(ax2, bx2) - np.maximum(ax1, bx1)
    ih = np.minimum(ay2, by2) - np.maximum(ay1, by1)
    np.maximum(iw, 0.0, out=iw)
    np.maximum(ih, 0.0, out=ih)
    inter = iw * ih
    area_a = np.maximum(ax2 - ax1, 0.0) * np.maximum(ay2 - ay1, 0.0)
    area_b = np.maximum(bx2 - bx1, 0.0) * np.maximum(by2 - by1, 0.0)
    union = area_a + area_b - inter
    # divide only where the union is not empty (no errstate context: this runs per frame)
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
