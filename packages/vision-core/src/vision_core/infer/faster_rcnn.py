"""torchvision Faster R-CNN models exported to ONNX, run by any `Runner`.

The export takes one RGB 0..1 float image [3, H, W] (the model normalises and resizes
inside) and returns boxes [N, 4] (xyxy, input pixels), labels [N] (int64, 0 = background)
and scores [N]. Model label L (1..nc) is dataset class L - 1.

Metadata read: `names` (the dataset's 0-based names) and, for a dynamic input,
`min_size`/`max_size` (the model's GeneralizedRCNNTransform sizes) so the image is resized
on the host exactly as torchvision would (see `FasterRCNNDetector.target_size`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import cv2
import numpy as np

from vision_core.errors import ModelLoadError
from vision_core.infer.base import (
    NamedClasses,
    Prepared,
    check_thresholds,
    class_names_for,
    ensure_bgr,
    parse_names,
    static_dim,
)
from vision_core.infer.letterbox import clip_boxes
from vision_core.infer.runner import Runner, TensorInfo, describe_io
from vision_core.types import Detection

if TYPE_CHECKING:
    import onnxruntime as ort

__all__ = ["FasterRCNNDetector"]


def _meta_int(raw: str | None) -> int | None:
    try:
        value = int(raw) if raw is not None else None
    except ValueError:
        return None
    return value if value is not None and value > 0 else None


def _pick_outputs(outputs: Sequence[TensorInfo]) -> tuple[str, str, str] | None:
    """Names of the (boxes, labels, scores) outputs, by name or else by type and rank."""
    names = {o.name for o in outputs}
    if {"boxes", "labels", "scores"} <= names:
        return "boxes", "labels", "scores"
    if len(outputs) != 3:
        return None
    ints = [o for o in outputs if "int" in o.type]
    floats2 = [o for o in outputs if "float" in o.type and len(o.shape) == 2]
    floats1 = [o for o in outputs if "float" in o.type and len(o.shape) == 1]
    if len(ints) == len(floats2) == len(floats1) == 1:
        return floats2[0].name, ints[0].name, floats1[0].name
    return None


class FasterRCNNDetector(NamedClasses):
    """A torchvision Faster R-CNN ONNX export (one image per run)."""

    def __init__(
        self,
        model: str | os.PathLike[str] | Runner | ort.InferenceSession,
        *,
        conf: float = 0.25,
        class_map: Mapping[int, str] | None = None,
        max_det: int = 300,
        provider: str = "cpu",
        threads: int = 0,
        runtime: str | None = None,
        precision: str = "fp32",
    ) -> None:
        check_thresholds(conf, max_det)
        from vision_core.infer.runtimes import open_runner

        runner = open_runner(
            model, runtime=runtime, precision=precision, provider=provider, threads=threads
        )
        self.runner: Runner = runner
        self.model_path = runner.model_path
        self.conf, self.max_det = conf, max_det
        self.metadata = dict(runner.metadata)
        self._class_map = dict(class_map or {})
        self._meta_names = parse_names(self.metadata.get("names"))
        self.min_size = _meta_int(self.metadata.get("min_size"))
        self.max_size = _meta_int(self.metadata.get("max_size"))

        inputs = runner.inputs
        picked = _pick_outputs(runner.outputs)
        if len(inputs) != 1 or picked is None:
            raise ModelLoadError(
                f"{self.model_path}: not a Faster R-CNN layout (want 1 image input and "
                f"boxes/labels/scores outputs): {describe_io(runner)}"
            )
        inp = inputs[0]
        shape = list(inp.shape)
        if len(shape) == 4 and static_dim(shape[0]) in (1, None):
            shape = shape[1:]
            self._add_batch = True
        else:
            self._add_batch = False
        if len(shape) != 3 or static_dim(shape[0]) not in (3, None) or inp.type != "tensor(float)":
            raise ModelLoadError(
                f"{self.model_path}: input must be a float image [3, H, W]: {describe_io(runner)}"
            )
        self._input_name = inp.name
        self._outputs = list(picked)
        h, w = static_dim(shape[1]), static_dim(shape[2])
        self.dynamic = h is None or w is None
        self.input_size: tuple[int, int] | None = None if self.dynamic else (h or 0, w or 0)
        n_names = len(self._meta_names) or (max(self._class_map) + 1 if self._class_map else 0)
        self.class_names: dict[int, str] = class_names_for(
            range(n_names), self._class_map, self._meta_names
        )

    def target_size(self, h: int, w: int) -> tuple[int, int]:
        """(h, w) of the tensor fed for an (h, w) image.

        A fixed-size input gets its size. A dynamic one gets torchvision's own resize (the
        `min_size`/`max_size` metadata), done here in double precision: the exported graph
        computes that size in float32 and can come out a pixel short; fed at the target
        size, the in-graph resize is the identity.
        """
        if self.input_size is not None:
            return self.input_size
        if self.min_size and self.max_size:
            scale = min(self.min_size / min(h, w), self.max_size / max(h, w))
            return max(math.floor(h * scale), 1), max(math.floor(w * scale), 1)
        return h, w

    def to_tensor(self, image_bgr: np.ndarray) -> np.ndarray:
        """RGB 0..1 float32 [3, H, W] (or [1, 3, H, W]) of a BGR image at the model's size."""
        h0, w0 = image_bgr.shape[:2]
        h, w = self.target_size(h0, w0)
        out = np.empty((3, h, w), dtype=np.float32)
        if (h, w) == (h0, w0):
            b, g, r = cv2.split(image_bgr)
            scale = np.float32(255)
            for c, plane in enumerate((r, g, b)):
                np.divide(plane, scale, out=out[c], dtype=np.float32)
        else:  # resize the 0..1 float image, as torchvision does
            unit = image_bgr.astype(np.float32)
            unit /= np.float32(255)
            resized = cv2.resize(unit, (w, h), interpolation=cv2.INTER_LINEAR)
            b, g, r = cv2.split(resized)
            out[0], out[1], out[2] = r, g, b
        return out[None] if self._add_batch else out

    def predict(self, image_bgr: np.ndarray) -> list[Detection]:
        """Detections on one BGR image, in its pixels."""
        return self.detect_prepared(self.prepare(image_bgr))

    def prepare(self, image_bgr: np.ndarray) -> Prepared:
        """The tensor of one image at the model's size; no model call."""
        image = ensure_bgr(image_bgr)
        return Prepared(image, self.to_tensor(image))

    def detect_prepared(self, prepared: Prepared) -> list[Detection]:
        """Detections of a `prepare`d image, in the pixels of the image passed to prepare."""
        img, tensor = prepared.image, prepared.tensor
        boxes, labels, scores = self.runner.run(self._outputs, {self._input_name: tensor})
        boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
        labels = np.asarray(labels).reshape(-1)
        scores = np.asarray(scores, dtype=np.float32).reshape(-1)
        if not boxes.shape[0] == labels.shape[0] == scores.shape[0]:
            raise ModelLoadError(
                f"{self.model_path}: outputs disagree in length: boxes {boxes.shape}, "
                f"labels {labels.shape}, scores {scores.shape}"
            )
        keep = np.flatnonzero((labels > 0) & (scores > self.conf))
        keep = keep[np.argsort(-scores[keep], kind="stable")][: self.max_det]
        boxes = boxes[keep]  # a copy: scaled and clipped in place below
        h0, w0 = img.shape[:2]
        h1, w1 = tensor.shape[-2:]
        if (h1, w1) != (h0, w0):
            boxes[:, 0::2] *= w0 / w1
            boxes[:, 1::2] *= h0 / h1
        clip_boxes(boxes, (h0, w0))
        return [
            self._detection(lab - 1, s, b)
            for lab, s, b in zip(
                labels[keep].tolist(), scores[keep].tolist(), boxes.tolist(), strict=True
            )
        ]

    def predict_batch(self, images: Sequence[np.ndarray]) -> list[list[Detection]]:
        """Detections on each image (the export takes one image per run)."""
        return [self.predict(im) for im in images]

    def __repr__(self) -> str:
        size = self.input_size or "dynamic"
        n = len(self.class_names)
        return f"FasterRCNNDetector({self.model_path!r}, input={size}, classes={n})"
