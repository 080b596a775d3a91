"""ultralytics YOLO: what `train.yolo.weights` names, and a checkpoint's class names."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from vision_train.errors import TrainError
from vision_train.finetune import StartPoint
from vision_train.weights import local_file

_SCRATCH_HINT = "or a model YAML such as yolo11n.yaml to train from scratch"


def _ultralytics_models_dir() -> Path | None:
    """ultralytics' bundled model YAMLs, found without importing ultralytics (seconds)."""
    spec = importlib.util.find_spec("ultralytics")
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent / "cfg" / "models"


def resolve_yolo_weights(weights: str, key: str = "train.yolo.weights") -> StartPoint:
    """A model YAML known to ultralytics or a local file (.yaml: from scratch; .pt: a
    fine-tune); never a hub name. No heavy import: a bad value fails in milliseconds."""
    if weights.endswith((".yaml", ".yml")):
        if Path(weights).is_file():
            return StartPoint(str(Path(weights).resolve()))
        root = _ultralytics_models_dir()
        stem = Path(weights).stem
        # ultralytics derives the scale from the name: yolo11n.yaml -> yolo11.yaml + scale n
        base = stem[:-1] if stem[-1:] in "nsmlx" else stem
        if root is not None and (
            any(root.rglob(f"{base}.yaml")) or any(root.rglob(f"{stem}.yaml"))
        ):
            return StartPoint(weights)
        raise TrainError(
            f"{key}: model YAML not found: {weights} (not a local file nor an ultralytics model config)"
        )
    path = local_file(weights, key, suffixes=(".pt",), scratch_hint=_SCRATCH_HINT)
    return StartPoint(str(path), checkpoint=path)


def yolo_checkpoint_names(checkpoint: Path) -> dict[int, str]:
    """The class names stored in an ultralytics checkpoint (imports ultralytics)."""
    from vision_train.ultralytics_env import offline_ultralytics

    offline_ultralytics()
    from ultralytics.nn.tasks import load_checkpoint

    try:
        model, _ = load_checkpoint(str(checkpoint))
    except Exception as exc:
        raise TrainError(f"{checkpoint}: not an ultralytics YOLO checkpoint ({exc})") from None
    names = getattr(model, "names", None) or {}
    if isinstance(names, list):
        names = dict(enumerate(names))
    return {int(k): str(v) for k, v in names.items()}
