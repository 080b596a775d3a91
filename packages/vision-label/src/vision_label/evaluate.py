"""`vision-label eval`: score a folder of YOLO label files against ground truth.

Predicted files may be plain YOLO lines (score 1) or carry a confidence in a 6th column.
Files are paired by relative path (`--pred` may be a labeled dir: its `labels/` is used);
a missing predicted file means no predictions, a missing truth file means no objects.
Boxes are compared in normalised coordinates (IoU is the same as in pixels).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vision_core.errors import LabelFormatError
from vision_core.formats.yolo import boxes_to_arrays, read_label_file
from vision_core.geometry import box_iou
from vision_core.metrics import MetricAccumulator, match_predictions
from vision_label.errors import LabelError

SKIP_FILES = {"classes.txt"}


@dataclass
class EvalResult:
    precision: float
    recall: float
    map50: float
    per_class: dict[str, dict[str, float]] = field(default_factory=dict)
    images: int = 0
    instances: int = 0
    predictions: int = 0
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "warnings": list(self.warnings),
            "precision": round(self.precision, 6),
            "recall": round(self.recall, 6),
            "map50": round(self.map50, 6),
            "images": self.images,
            "instances": self.instances,
            "predictions": self.predictions,
            "per_class": self.per_class,
        }


def read_labels(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(boxes xyxy normalised, scores, class ids); a 6th column is the score, else 1."""
    try:
        return boxes_to_arrays(read_label_file(path))
    except LabelFormatError as exc:
        raise LabelError(str(exc)) from None


def _label_root(path: Path) -> Path:
    if (path / "labels").is_dir() and (path / "dataset.yaml").is_file():
        return path / "labels"
    return path


def _names(d: Path) -> dict[int, str]:
    for cand in (d / "classes.txt", d.parent / "classes.txt"):
        if cand.is_file():
            lines = [ln.strip() for ln in cand.read_text(encoding="utf-8").splitlines()]
            return {i: n for i, n in enumerate(ln for ln in lines if ln)}
    return {}


def _listed(names: dict[int, str]) -> str:
    return "[" + ", ".join(f"{k}: {v}" for k, v in sorted(names.items())) + "]"


def evaluate_dirs(pred_dir: str | Path, truth_dir: str | Path) -> EvalResult:
    pred_root, truth_root = _label_root(Path(pred_dir)), _label_root(Path(truth_dir))
    for d, what in ((pred_root, "--pred"), (truth_root, "--truth")):
        if not d.is_dir():
            raise LabelError(f"{what}: folder not found: {d}")
    rels = {
        p.relative_to(root).as_posix()
        for root in (pred_root, truth_root)
        for p in root.rglob("*.txt")
        if p.name not in SKIP_FILES
    }
    if not rels:
        raise LabelError(f"no label files in {pred_root} or {truth_root}")
    truth_names, pred_names = _names(truth_root), _names(pred_root)
    names = truth_names or pred_names
    warnings = []
    if truth_names and pred_names and truth_names != pred_names:
        warnings.append(
            f"class names differ: --pred has {_listed(pred_names)}, --truth has "
            f"{_listed(truth_names)}; boxes are matched by class id"
        )
    acc = MetricAccumulator(names)
    tp_c: dict[int, int] = {}
    pred_c: dict[int, int] = {}
    true_c: dict[int, int] = {}
    for rel in sorted(rels):
        pb, ps, pc = read_labels(pred_root / rel)
        tb, _, tc = read_labels(truth_root / rel)
        acc.add(pb, ps, pc, tb, tc)
        iou = box_iou(tb, pb) if len(tb) and len(pb) else np.zeros((len(tb), len(pb)))
        tp = match_predictions(pc, tc, iou)[:, 0]
        for c, hit in zip(pc.tolist(), tp.tolist(), strict=True):
            pred_c[c] = pred_c.get(c, 0) + 1
            tp_c[c] = tp_c.get(c, 0) + int(hit)
        for c in tc.tolist():
            true_c[c] = true_c.get(c, 0) + 1
    m = acc.compute()
    per_class: dict[str, dict[str, float]] = {}
    for c in sorted(set(pred_c) | set(true_c)):
        name = names.get(c, str(c))
        tp_n, np_n, nt_n = tp_c.get(c, 0), pred_c.get(c, 0), true_c.get(c, 0)
        per_class[name] = {
            "precision": round(tp_n / np_n, 6) if np_n else 0.0,
            "recall": round(tp_n / nt_n, 6) if nt_n else 0.0,
            "ap50": float(m.per_class.get(name, {}).get("ap50", 0.0)),
            "instances": nt_n,
            "predictions": np_n,
        }
    total_tp, total_p, total_t = sum(tp_c.values()), sum(pred_c.values()), sum(true_c.values())
    return EvalResult(
        precision=total_tp / total_p if total_p else 0.0,
        recall=total_tp / total_t if total_t else 0.0,
        map50=m.map50,
        per_class=per_class,
        images=len(rels),
        instances=total_t,
        predictions=total_p,
        warnings=warnings,
    )
