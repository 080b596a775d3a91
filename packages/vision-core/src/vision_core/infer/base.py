"""What every detector offers, plus the helpers its adapters share (input checks, names)."""

from __future__ import annotations

import ast
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import cv2
import numpy as np

from vision_core.errors import InferenceError
from vision_core.types import Detection

__all__ = [
    "Detector",
    "NamedClasses",
    "Prepared",
    "class_names_for",
    "ensure_bgr",
    "make_detection",
    "parse_names",
    "static_dim",
]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Prepared:
    """An image made ready for the model: what `Detector.prepare` returns.

    `prepare` (decode-side work: colour checks, resize/letterbox, the float tensor) and
    `detect_prepared` (session.run and postprocessing) split one prediction in two, so a
    pipeline can prepare frame N+1 on another thread while frame N is in the model
    (OpenCV and NumPy release the GIL, ONNX Runtime and OpenVINO too).
    """

    image: np.ndarray  # the BGR image, as passed in (after ensure_bgr)
    tensor: np.ndarray  # the model input
    extra: Any = None  # adapter-specific (YOLO: the Letterboxed)


@runtime_checkable
class Detector(Protocol):
    """An object detector. Boxes come back in pixels of the image passed in."""

    class_names: dict[int, str]
    input_size: tuple[int, int] | None  # (h, w) the model takes; None when fully dynamic
    dynamic: bool
    model_path: str

    def predict(self, image_bgr: np.ndarray) -> list[Detection]:
        """Detections on one BGR uint8 image (H, W, 3)."""
        ...

    def predict_batch(self, images: Sequence[np.ndarray]) -> list[list[Detection]]:
        """Detections on each image, in order."""
        ...

    def prepare(self, image_bgr: np.ndarray) -> Prepared:
        """The first half of `predict`: checks and preprocessing, no model call."""
        ...

    def detect_prepared(self, prepared: Prepared) -> list[Detection]:
        """The second half of `predict`: the model call and postprocessing."""
        ...


def check_thresholds(conf: float, max_det: int, iou: float | None = None) -> None:
    """ValueError for a score threshold or NMS IoU outside [0, 1], or max_det below 1."""
    if not 0.0 <= conf <= 1.0:
        raise ValueError(f"conf must be in [0, 1], got {conf}")
    if iou is not None and not 0.0 <= iou <= 1.0:
        raise ValueError(f"iou must be in [0, 1], got {iou}")
    if max_det < 1:
        raise ValueError(f"max_det must be >= 1, got {max_det}")


def ensure_bgr(image: object) -> np.ndarray:
    """`image` as a BGR uint8 (H, W, 3) array: grayscale and BGRA are converted.

    Raises InferenceError for None, an empty array, a non-uint8 array or any other shape.
    """
    if image is None:
        raise InferenceError("image is None (was the file or frame read?)")
    if not isinstance(image, np.ndarray):
        raise InferenceError(f"image must be a numpy array, got {type(image).__name__}")
    if image.size == 0:
        raise InferenceError(f"image is empty (shape {image.shape})")
    if image.dtype != np.uint8:
        raise InferenceError(f"image must be uint8, got {image.dtype}")
    gray = image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1)
    if not gray and (image.ndim != 3 or image.shape[2] not in (3, 4)):
        raise InferenceError(
            f"image must be (H, W, 3) BGR, (H, W, 4) BGRA or (H, W) grayscale; got {image.shape}"
        )
    if not image.flags.c_contiguous:  # OpenCV wants positive, dense strides
        image = np.ascontiguousarray(image)
    if gray:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return image


def parse_names(raw: str | None) -> dict[int, str]:
    """Class names from a metadata string: a Python dict/list literal (ultralytics) or JSON.

    Never evaluates code. Anything unreadable gives {} (and a log line).
    """
    if not raw or not raw.strip():
        return {}
    value: object
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        try:
            value = json.loads(raw)
        except ValueError:
            log.warning("model metadata 'names' is neither a literal nor JSON: %.80r", raw)
            return {}
    try:
        if isinstance(value, Mapping):
            return {int(k): str(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return {i: str(v) for i, v in enumerate(value)}
    except (TypeError, ValueError):
        pass
    log.warning("model metadata 'names' is not a dict or list of names: %.80r", raw)
    return {}


def class_names_for(
    ids: Sequence[int] | range,
    class_map: Mapping[int, str] | None,
    metadata_names: Mapping[int, str],
) -> dict[int, str]:
    """Name of each id: from `class_map`, else the model metadata, else "class_<id>"."""
    cm = class_map or {}
    return {i: cm.get(i) or metadata_names.get(i) or f"class_{i}" for i in ids}


class NamedClasses:
    """What the detector adapters share to name a detection's class: `class_names` (the
    known ids), `class_map` (the config's names) and the model metadata's names."""

    class_names: dict[int, str]
    _class_map: dict[int, str]
    _meta_names: dict[int, str]

    def _detection(self, class_id: int, score: float, box: Sequence[float]) -> Detection:
        name = self.class_names.get(class_id)
        if name is None:
            name = class_names_for([class_id], self._class_map, self._meta_names)[class_id]
        return make_detection(class_id, name, score, box)


def static_dim(dim: object) -> int | None:
    """A tensor dimension as an int, or None when it is symbolic/unknown."""
    return dim if isinstance(dim, int) and dim > 0 else None


def make_detection(class_id: int, class_name: str, score: float, box: Sequence[float]) -> Detection:
    """A Detection from a box (x1, y1, x2, y2); the score is clamped to [0, 1]."""
    x1, y1, x2, y2 = (float(v) for v in box)
    return Detection(
        class_id=class_id,
        class_name=class_name,
        score=min(max(score, 0.0), 1.0),
        xyxy=(x1, y1, x2, y2),
    )
