"""Ultralytics YOLO detection models exported to ONNX, run by any `Runner`.

Pre- and post-processing follow ultralytics' predictor for an ONNX model: letterbox to the
exported size (or the minimal stride-aligned rectangle for a dynamic export), RGB 0..1 NCHW
float32, best class per box, `score > conf`, class-aware NMS via a 7680 px class offset,
`max_det`, boxes mapped back to original pixels and clipped. The runtime (ONNX Runtime or
OpenVINO) only runs the graph: this one copy of the processing serves both.
"""

from __future__ import annotations

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
)
from vision_core.infer.layout import DEFAULT_IMGSZ, YoloLayout, read_yolo_layout
from vision_core.infer.letterbox import Letterboxed, letterbox, scale_boxes
from vision_core.infer.nms import batched_nms
from vision_core.infer.runner import Runner
from vision_core.types import Detection

if TYPE_CHECKING:
    import onnxruntime as ort

__all__ = ["DEFAULT_IMGSZ", "YoloDetector"]

MAX_NMS = 30_000  # boxes entering NMS at most (ultralytics' max_nms)
MAX_WH = 7680  # per-class box offset of class-aware NMS (ultralytics' max_wh)


class YoloDetector(NamedClasses):
    """A YOLO detection model (output (B, 4 + nc, N), xywh boxes, sigmoid scores).

    `model`: a path (opened with `runtime` at `precision`), a `Runner`, or an ONNX Runtime
    session.
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | Runner | ort.InferenceSession,
        *,
        conf: float = 0.25,
        iou: float = 0.7,
        max_det: int = 300,
        agnostic: bool = False,
        class_map: Mapping[int, str] | None = None,
        provider: str = "cpu",
        threads: int = 0,
        imgsz: int | None = None,
        multi_label: bool = False,
        runtime: str | None = None,
        precision: str = "fp32",
    ) -> None:
        check_thresholds(conf, max_det, iou)
        from vision_core.infer.runtimes import open_runner

        runner = open_runner(
            model, runtime=runtime, precision=precision, provider=provider, threads=threads
        )
        self.runner: Runner = runner
        self.model_path = runner.model_path
        self.conf, self.iou, self.max_det, self.agnostic = conf, iou, max_det, agnostic
        # multi_label: a box may be kept once per class above conf (ultralytics val's
        # convention for mAP); off on devices, where a box carries its best class
        self.multi_label = multi_label
        self.metadata = dict(runner.metadata)
        self._class_map = dict(class_map or {})
        self.layout: YoloLayout = read_yolo_layout(runner, imgsz)
        lay = self.layout
        self._batch = lay.batch  # None: dynamic batch
        self.dynamic = lay.dynamic
        self.input_size: tuple[int, int] | None = lay.input_size
        self.stride, self.imgsz, self.end2end, self.nc = lay.stride, lay.imgsz, lay.end2end, lay.nc
        self._meta_names = lay.names
        n_names = self.nc or len(lay.names) or (max(self._class_map) + 1 if self._class_map else 0)
        self.class_names: dict[int, str] = class_names_for(
            range(n_names), self._class_map, lay.names
        )

    # -- preprocessing -----------------------------------------------------------------

    def letterbox(self, image_bgr: np.ndarray) -> Letterboxed:
        """The image as the model sees it (before colour/layout conversion)."""
        if self.input_size is not None:
            return letterbox(image_bgr, self.input_size, stride=self.stride, auto=False)
        return letterbox(image_bgr, (self.imgsz, self.imgsz), stride=self.stride, auto=True)

    def to_tensor(self, images: Sequence[np.ndarray], batch: int | None = None) -> np.ndarray:
        """Stack letterboxed BGR images (same size) into an RGB 0..1 NCHW tensor.

        `batch` > len(images) pads with zero images (for fixed-batch models).
        """
        h, w = images[0].shape[:2]
        n = max(batch or 0, len(images))
        alloc = np.zeros if n > len(images) else np.empty
        out = alloc((n, 3, h, w), dtype=np.float32)
        scale = np.float32(255)
        for k, im in enumerate(images):
            b, g, r = cv2.split(im)  # BGR -> RGB and HWC -> CHW in one pass
            for c, plane in enumerate((r, g, b)):
                np.divide(plane, scale, out=out[k, c], dtype=np.float32)
        dtype = self.layout.input_dtype
        return out if dtype is np.float32 else out.astype(dtype)

    # -- inference -----------------------------------------------------------------------

    def predict(self, image_bgr: np.ndarray) -> list[Detection]:
        """Detections on one BGR image, in its pixels."""
        return self.detect_prepared(self.prepare(image_bgr))

    def prepare(self, image_bgr: np.ndarray) -> Prepared:
        """Letterbox and tensor of one image (padded to a fixed batch); no model call."""
        image = ensure_bgr(image_bgr)
        boxed = self.letterbox(image)
        return Prepared(image, self.to_tensor([boxed.image], self._batch), boxed)

    def detect_prepared(self, prepared: Prepared) -> list[Detection]:
        """Detections of a `prepare`d image, in the pixels of the image passed to prepare."""
        raw = self.run(prepared.tensor)
        return self._postprocess(raw[0], prepared.extra, prepared.image.shape[:2])

    def predict_batch(self, images: Sequence[np.ndarray]) -> list[list[Detection]]:
        """Detections on each image; one model run per batch the model accepts."""
        bgr = [ensure_bgr(im) for im in images]
        boxed = [self.letterbox(im) for im in bgr]
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, lb in enumerate(boxed):  # a dynamic model may letterbox images to different sizes
            groups.setdefault(lb.image.shape, []).append(i)
        results: list[list[Detection]] = [[] for _ in bgr]
        for idxs in groups.values():
            step = self._batch or len(idxs)
            for start in range(0, len(idxs), step):
                part = idxs[start : start + step]
                tensor = self.to_tensor([boxed[i].image for i in part], self._batch)
                raw = self.run(tensor)
                for k, i in enumerate(part):
                    results[i] = self._postprocess(raw[k], boxed[i], bgr[i].shape[:2])
        return results

    def run(self, tensor: np.ndarray) -> np.ndarray:
        """The raw model output for an NCHW input tensor, checked and as float32."""
        lay = self.layout
        out = self.runner.run([lay.output_name], {lay.input_name: tensor})[0]
        want = lay.output_channels
        dim = 2 if self.end2end else 1
        if out.ndim != 3 or out.shape[0] != tensor.shape[0] or (want and out.shape[dim] != want):
            raise ModelLoadError(
                f"{self.model_path}: output shape {out.shape} for input {tensor.shape} is not "
                f"{'(B, N, 6)' if self.end2end else '(B, 4 + nc, N)'}"
            )
        return out if out.dtype == np.float32 else out.astype(np.float32)

    # -- postprocessing ------------------------------------------------------------------

    def _postprocess(
        self, pred: np.ndarray, lb: Letterboxed, orig_shape: tuple[int, int]
    ) -> list[Detection]:
        if self.end2end:
            keep = np.flatnonzero(pred[:, 4] > self.conf)[: self.max_det]
            boxes = pred[keep, :4].copy()
            scores = pred[keep, 4]
            cls = pred[keep, 5].astype(np.int64)
        else:
            cls_scores = pred[4:]
            if self.multi_label:
                cls, cand = np.nonzero(cls_scores > self.conf)
                scores = cls_scores[cls, cand]
                if cand.shape[0] > MAX_NMS:
                    top = np.argsort(-scores, kind="stable")[:MAX_NMS]
                    cls, cand, scores = cls[top], cand[top], scores[top]
            else:
                best = cls_scores.max(axis=0)
                cand = np.flatnonzero(best > self.conf)
                if cand.shape[0] > MAX_NMS:
                    cand = cand[np.argsort(-best[cand], kind="stable")[:MAX_NMS]]
                scores = best[cand]
                cls = cls_scores[:, cand].argmax(axis=0)
            if not cand.shape[0]:
                return []
            xywh = pred[:4, cand].T
            half = xywh[:, 2:] / 2
            boxes = np.concatenate((xywh[:, :2] - half, xywh[:, :2] + half), axis=1)
            keep = batched_nms(
                boxes,
                scores,
                cls,
                self.iou,
                agnostic=self.agnostic,
                max_wh=MAX_WH,
                max_keep=self.max_det,
            )
            boxes, scores, cls = boxes[keep], scores[keep], cls[keep]
        scale_boxes(boxes, orig_shape, lb.ratio, lb.pad)
        return [
            self._detection(c, s, b)
            for c, s, b in zip(cls.tolist(), scores.tolist(), boxes.tolist(), strict=True)
        ]

    def __repr__(self) -> str:
        size = self.input_size or f"dynamic<= {self.imgsz}"
        n = len(self.class_names)
        rt = f"{self.runner.runtime}/{self.runner.precision}"
        return f"YoloDetector({self.model_path!r}, {rt}, input={size}, classes={n})"
