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
    area_a = (aa[:, 2] - aa[:, 0]).clip(0) * (aa[:, 3] - aa[:, 1]).clip(0)
    area_b = (bb[:, 2] - bb[:, 0]).clip(0) * (bb[:, 3] - bb[:, 1]).clip(0)
    lt = np.maximum(aa[:, None, :2], bb[None, :, :2])
    rb = np.minimum(aa[:, None, 2:], bb[None, :, 2:])
    wh = np.clip(rb - lt, 0, None)
    inter = wh[..., 0] * wh[..., 1]
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / union, 0.0)
