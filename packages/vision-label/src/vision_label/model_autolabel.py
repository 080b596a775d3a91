"""The `model` autolabel backend: an ONNX detector (YOLO or Faster R-CNN) from vision-core.

The detector is `infer.*`'s (`detector_from_config`, the same as every other command);
files are decoded and prepared in `autolabel.workers` threads ahead of the model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vision_core.kernel import RunContext
from vision_label.engine import label_folder, make_layout
from vision_label.errors import LabelConfigError


def resolve_model_path(ctx: RunContext) -> Path:
    raw = ctx.config.infer.model_path
    if not raw:
        raise LabelConfigError(
            "no model to label with: infer.model_path is empty (set it to an ONNX model, "
            "e.g. --set infer.model_path=work-dir/runs/.../model.onnx)"
        )
    path = Path(raw).resolve()
    if not path.is_file():
        raise LabelConfigError(f"infer.model_path: model file not found: {path}")
    return path


def run_model_autolabel(ctx: RunContext) -> dict[str, Any]:
    from vision_core.infer import detector_from_config
    from vision_core.pipeline import LocalEngine

    cfg = ctx.config
    model_path = resolve_model_path(ctx)
    layout = make_layout(cfg.data.unlabeled_dir, cfg.data.labeled_dir)
    detector = detector_from_config(cfg, str(model_path), logger=ctx.logger)
    ctx.metrics["model_path"] = str(model_path)
    engine = LocalEngine(detector)
    counts = label_folder(ctx, layout, detector.class_names, engine, workers=cfg.autolabel.workers)
    ctx.logger.info(
        "autolabel.done",
        f"labeled {counts.labeled}, skipped {counts.skipped}, failed {counts.failed}",
    )
    return {
        "labeled_dir": str(layout.labeled),
        "dataset_yaml": str(layout.labeled / "dataset.yaml"),
        "model_path": str(model_path),
    }
