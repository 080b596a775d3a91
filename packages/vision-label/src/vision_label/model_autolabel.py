"""The `model` autolabel backend: an ONNX detector (YOLO or Faster R-CNN) from vision-core.

Decoding runs in `autolabel.workers` threads ahead of the inference loop.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from vision_core.kernel import RunContext
from vision_core.types import Detection
from vision_label.engine import label_folder, make_layout
from vision_label.errors import LabelConfigError


def resolve_model_path(ctx: RunContext) -> Path:
    cfg = ctx.config
    raw = cfg.autolabel.model_path or cfg.infer.model_path
    if not raw:
        raise LabelConfigError(
            "no model to label with: autolabel.model_path and infer.model_path are both empty "
            "(set one to an ONNX model, e.g. --set autolabel.model_path=runs/.../model.onnx)"
        )
    path = Path(raw).resolve()
    if not path.is_file():
        key = "autolabel.model_path" if cfg.autolabel.model_path else "infer.model_path"
        raise LabelConfigError(f"{key}: model file not found: {path}")
    return path


def _stages(
    detector: Any, read_image: Callable[[Path], np.ndarray]
) -> tuple[Callable[[Path], Any], Callable[[Any], tuple[np.ndarray, list[Detection]]]]:
    """(stage1 in the decode threads, stage2 on the inference thread).

    For a YOLO model the letterbox and tensor conversion also run in the decode threads
    (OpenCV releases the GIL), leaving the inference thread only session.run and NMS;
    other detectors decode ahead and predict on the inference thread.
    """
    from vision_core.infer import YoloDetector
    from vision_core.infer.base import ensure_bgr

    if isinstance(detector, YoloDetector) and detector._batch in (None, 1):
        yolo = detector

        def prepare(path: Path) -> tuple[np.ndarray, Any, np.ndarray]:
            image = ensure_bgr(read_image(path))
            boxed = yolo.letterbox(image)
            return image, boxed, yolo.to_tensor([boxed.image], yolo._batch)

        def infer_yolo(
            item: tuple[np.ndarray, Any, np.ndarray],
        ) -> tuple[np.ndarray, list[Detection]]:
            image, boxed, tensor = item
            raw = yolo.run(tensor)
            return image, yolo._postprocess(raw[0], boxed, image.shape[:2])

        return prepare, infer_yolo

    def infer(image: np.ndarray) -> tuple[np.ndarray, list[Detection]]:
        return image, detector.predict(image)

    return read_image, infer


def run_model_autolabel(ctx: RunContext) -> dict[str, Any]:
    from vision_core.infer import load_detector
    from vision_core.media import read_image

    cfg = ctx.config
    model_path = resolve_model_path(ctx)
    layout = make_layout(cfg.data.unlabeled_dir, cfg.data.labeled_dir)
    detector = load_detector(
        model_path,
        conf=cfg.autolabel.conf,
        iou=cfg.autolabel.iou,
        max_det=cfg.infer.max_det,
        agnostic=cfg.infer.agnostic_nms,
        class_map=dict(cfg.class_map) or None,
        provider=cfg.infer.provider,
        threads=cfg.infer.threads,
    )
    ctx.metrics["model_path"] = str(model_path)

    stage1, stage2 = _stages(detector, read_image)
    counts = label_folder(
        ctx, layout, detector.class_names, stage1, stage2, parallel=cfg.autolabel.workers
    )
    ctx.logger.info(
        "autolabel.done",
        f"labeled {counts.labeled}, skipped {counts.skipped}, failed {counts.failed}",
    )
    return {
        "labeled_dir": str(layout.labeled),
        "dataset_yaml": str(layout.labeled / "dataset.yaml"),
        "model_path": str(model_path),
    }
