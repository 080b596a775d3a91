"""Fine-tuning: what training starts from, whose class names, and the never-worse rule.

A run whose weights are a trained checkpoint is a fine-tune: the starting model is
evaluated first (epoch 0), and when training ends below it the starting weights are what
the run exports (train.keep_start_if_worse). Its class names must be the dataset's,
unless train.on_class_mismatch says to train on the dataset's names anyway.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vision_core.config import PipelineConfig
from vision_core.logging import StructuredLogger
from vision_train.errors import ClassNamesError

# the figures compared, in order: the headline mAP50 first, mAP50-95 breaks a tie
COMPARED = ("map50", "map50_95")


@dataclass(frozen=True, slots=True)
class StartPoint:
    """A model definition (training from scratch) or a trained checkpoint (a fine-tune)."""

    weights: str  # what the backend loads: a model YAML name/path or a checkpoint path
    checkpoint: Path | None = None  # set for a fine-tune

    @property
    def finetune(self) -> bool:
        return self.checkpoint is not None


def names_differ(a: dict[int, str], b: dict[int, str]) -> bool:
    return {int(k): str(v) for k, v in a.items()} != {int(k): str(v) for k, v in b.items()}


def _listed(names: dict[int, str]) -> str:
    return "[" + ", ".join(f"{k}: {v}" for k, v in sorted(names.items())) + "]"


def mismatch_message(model: str, model_names: dict[int, str], dataset_names: dict[int, str]) -> str:
    return (
        f"class names differ: {model} has {_listed(model_names)}, "
        f"the dataset has {_listed(dataset_names)}"
    )


def _record_mismatch(
    metrics: dict[str, Any], model_names: dict[int, str], dataset_names: dict[int, str]
) -> None:
    """metrics["class_mismatch"]: both lists, keyed by the class id as text (as in JSON)."""
    metrics["class_mismatch"] = {
        "model": {str(k): v for k, v in model_names.items()},
        "dataset": {str(k): v for k, v in dataset_names.items()},
    }


def check_class_names(
    cfg: PipelineConfig,
    model: str,
    model_names: dict[int, str],
    dataset_names: dict[int, str],
    logger: StructuredLogger,
    metrics: dict[str, Any],
) -> None:
    """Equal names, or ClassNamesError naming both lists, unless train.on_class_mismatch
    is "use_dataset" (then a warning, and the run trains on the dataset's names by id)."""
    if not model_names or not names_differ(model_names, dataset_names):
        return
    message = mismatch_message(model, model_names, dataset_names)
    if cfg.train.on_class_mismatch == "error":
        raise ClassNamesError(
            f"{message}. Training or evaluating would pair them by class id. Label the data "
            'with the model\'s names, or set train.on_class_mismatch = "use_dataset" to '
            "train on the dataset's names (class id i of the checkpoint becomes the dataset's "
            "class i; a different number of classes gets a new head)"
        )
    _record_mismatch(metrics, model_names, dataset_names)
    logger.warn(
        "train.class_mismatch",
        f"{message}; train.on_class_mismatch = use_dataset: training on the dataset's names",
    )


def warn_class_mismatch(
    model: str,
    model_names: dict[int, str],
    dataset_names: dict[int, str],
    logger: StructuredLogger,
    metrics: dict[str, Any],
) -> None:
    """Evaluation only warns: the figures are still computed, by class id."""
    if model_names and names_differ(model_names, dataset_names):
        _record_mismatch(metrics, model_names, dataset_names)
        logger.warn(
            "eval.class_mismatch",
            f"{mismatch_message(model, model_names, dataset_names)}; mAP is computed by class id",
        )


def rounded(figures: dict[str, Any]) -> dict[str, float]:
    return {k: round(float(figures[k]), 6) for k in COMPARED if figures.get(k) is not None}


def trained_is_worse(start: dict[str, Any], trained: dict[str, Any]) -> bool:
    """True when the trained model ends below the start (mAP50, then mAP50-95 on a tie)."""
    a = tuple(float(start.get(k) or 0.0) for k in COMPARED)
    b = tuple(float(trained.get(k) or 0.0) for k in COMPARED)
    return b < a


def record_start(
    ctx_metrics: dict[str, Any], epochs: list[dict[str, Any]], start: dict[str, Any]
) -> None:
    """Epoch 0 of a fine-tune: the starting model on the val split."""
    epochs.insert(0, {"epoch": 0, "mAP50": start["map50"], "mAP50-95": start["map50_95"]})
    ctx_metrics["finetune"] = {"map50_before": start["map50"], "map50_95_before": start["map50_95"]}


def settle(
    cfg: PipelineConfig,
    metrics: dict[str, Any],
    start: dict[str, Any],
    trained: dict[str, Any],
    logger: StructuredLogger,
) -> bool:
    """Record before/after; True when the run must keep (export) the starting weights."""
    keep_start = cfg.train.keep_start_if_worse and trained_is_worse(start, trained)
    ft = metrics.setdefault("finetune", {})
    ft.update(
        {
            "map50_before": round(float(start["map50"]), 6),
            "map50_95_before": round(float(start["map50_95"]), 6),
            "map50_trained": round(float(trained.get("map50") or 0.0), 6),
            "map50_95_trained": round(float(trained.get("map50_95") or 0.0), 6),
            "kept": "start" if keep_start else "trained",
        }
    )
    chosen = start if keep_start else trained
    ft["map50_after"] = round(float(chosen.get("map50") or 0.0), 6)
    ft["map50_95_after"] = round(float(chosen.get("map50_95") or 0.0), 6)
    if keep_start:
        logger.warn(
            "train.kept_start",
            f"training ended below the starting model (mAP50 {ft['map50_trained']:.3f} < "
            f"{ft['map50_before']:.3f}): keeping the starting weights (train.keep_start_if_worse)",
        )
    else:
        logger.info(
            "train.finetune",
            f"fine-tune: mAP50 {ft['map50_before']:.3f} before, {ft['map50_after']:.3f} after",
        )
    return keep_start
