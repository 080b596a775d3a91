"""The `model` autolabel backend: an ONNX detector (YOLO or Faster R-CNN) from vision-core.

Decoding runs in `autolabel.workers` threads ahead of the inference loop.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vision_core.kernel import RunContext
from vision_core.types import Detection
from vision_label.engine import label_folder, make_layout
from vision_label.errors import LabelConfigError

if TYPE_CHECKING:
    from vision_core.infer import Prepared


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

    Stage 1 decodes and runs the detector's `prepare` (letterbox, tensor conversion:
    OpenCV and NumPy release the GIL), leaving the inference thread only the model call
    and postprocessing (`detect_prepared`).
    """

    def prepare(path: Path) -> Prepared:
        return detector.prepare(read_image(path))

    def infer(item: Prepared) -> tuple[np.ndarray, list[Detection]]:
        return item.image, detector.detect_prepared(item)

    return prepare, infer


def run_model_autolabel(ctx: RunContext) -> dict[str, Any]:
    from vision_core.infer import detector_from_config
    from vision_core.media import read_image

    cfg = ctx.config
    model_path = resolve_model_path(ctx)
    layout = make_layout(cfg.data.unlabeled_dir, cfg.data.labeled_dir)
    detector = detector_from_config(
        cfg,
        str(model_path),
        conf=cfg.autolabel.conf,  # until autolabel.conf/iou become aliases of infer.conf/iou
        iou=cfg.autolabel.iou,
        logger=ctx.logger,
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
