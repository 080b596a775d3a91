"""Draw detections on a copy of a BGR frame (the input is never modified)."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from vision_core.types import Detection


def class_colour(class_id: int) -> tuple[int, int, int]:
    """A distinct, stable BGR colour per class id."""
    # deterministic, well-spread hues per class
    hue = (class_id * 47) % 180
    hsv = np.array([[[hue, 220, 255]]], dtype=np.uint8)
    b, g, r = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0]
    return int(b), int(g), int(r)


def draw_detections(
    image: np.ndarray, detections: Sequence[Detection], *, thickness: int = 0
) -> np.ndarray:
    """Return an annotated copy: a box and `name score` label per detection."""
    out = image.copy()
    h, w = out.shape[:2]
    lw = thickness or max(1, round((h + w) / 2 * 0.003))
    for det in detections:
        x1, y1, x2, y2 = (round(v) for v in det.xyxy)
        col = class_colour(det.class_id)
        cv2.rectangle(out, (x1, y1), (x2, y2), col, lw, cv2.LINE_AA)
        label = f"{det.class_name} {det.score:.2f}"
        scale = max(0.35, lw / 3)
        (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, max(1, lw // 2))
        top = y1 - th - base - 2 if y1 - th - base - 2 >= 0 else y1
        cv2.rectangle(out, (x1, top), (x1 + tw + 2, top + th + base + 2), col, -1)
        cv2.putText(
            out,
            label,
            (x1 + 1, top + th + 1),
            cv2.FONT_HERSHEY_SIMPLEX,
            scale,
            (0, 0, 0),
            max(1, lw // 2),
            cv2.LINE_AA,
        )
    return out
