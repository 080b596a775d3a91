"""The point of a box that crosses lines and enters zones.

Anchors (`track.anchor`): `center` (default) is the mean of both box edges, so it jitters
least when a detector's box edges wobble; `bottom_center` is where a person or vehicle
touches the ground, the point to use when a line is drawn on the floor of a camera that
looks down at an angle; `top_center`, `left_center`, `right_center` are for a line close
to that edge of the frame, where an entering or leaving object's box is clipped by the
frame edge and only the box edge facing that side moves across the line.

One anchor point, not "all four corners on one side" (supervision's default): with the
corner rule a box larger than its distance to a line can never be wholly on one side,
so a line near the frame edge never counts (supervision issue 1838).
"""

from __future__ import annotations

from typing import Literal

import numpy as np

__all__ = ["Anchor", "anchor_points"]

Anchor = Literal["center", "bottom_center", "top_center", "left_center", "right_center"]


def anchor_points(xyxy: np.ndarray, anchor: Anchor = "center") -> np.ndarray:
    """(N, 2) anchor points of (N, 4) xyxy boxes."""
    b = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
    cx = (b[:, 0] + b[:, 2]) / 2
    cy = (b[:, 1] + b[:, 3]) / 2
    if anchor == "center":
        return np.column_stack((cx, cy))
    if anchor == "bottom_center":
        return np.stack([cx, b[:, 3]], 1)
    if anchor == "top_center":
        return np.stack([cx, b[:, 1]], 1)
    if anchor == "left_center":
        return np.stack([b[:, 0], cy], 1)
    if anchor == "right_center":
        return np.stack([b[:, 2], cy], 1)
    raise ValueError(f"unknown anchor {anchor!r}")
