"""torchvision Faster R-CNN: build a variant from scratch, read and write our checkpoints.

Training (backends/faster_rcnn.py) and export (export/faster_rcnn.py) both build on this;
it imports neither of them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vision_train.errors import TrainError

VARIANTS = ("mobilenet_v3", "resnet50_fpn", "resnet50_fpn_v2", "resnet18_fpn")
DEFAULT_IMGSZ = 320
DEFAULT_VARIANT = "mobilenet_v3"
PREDICTOR_PREFIX = "roi_heads.box_predictor."  # the per-class layers (resized with the classes)


def build_model(variant: str, num_classes: int, imgsz: int) -> Any:
    """A Faster R-CNN from scratch (no downloaded weights); num_classes includes background."""
    from torchvision.models.detection import (
        FasterRCNN,
        fasterrcnn_mobilenet_v3_large_fpn,
        fasterrcnn_resnet50_fpn,
        fasterrcnn_resnet50_fpn_v2,
    )
    from torchvision.models.detection.backbone_utils import resnet_fpn_backbone

    kw: dict[str, Any] = {
        "num_classes": num_classes,
        "min_size": imgsz,
        "max_size": imgsz,
        "box_score_thresh": 0.001,
    }
    if variant == "mobilenet_v3":
        return fasterrcnn_mobilenet_v3_large_fpn(weights=None, weights_backbone=None, **kw)
    if variant == "resnet50_fpn":
        return fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None, **kw)
    if variant == "resnet50_fpn_v2":
        return fasterrcnn_resnet50_fpn_v2(weights=None, weights_backbone=None, **kw)
    if variant == "resnet18_fpn":
        backbone = resnet_fpn_backbone(backbone_name="resnet18", weights=None, trainable_layers=5)
        return FasterRCNN(backbone, **kw)
    raise TrainError(
        f"train.faster_rcnn.variant: unknown variant {variant!r}; available: {', '.join(VARIANTS)}"
    )


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Our checkpoint: {"state_dict", "variant", "names", "imgsz"} (+ "epoch", "optimizer"
    and "best_map50" in a run's last.pt, for --resume); a bare state dict works too."""
    import torch

    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise TrainError(f"{path}: not a loadable PyTorch state dict ({exc})") from None
    if isinstance(obj, dict) and "state_dict" in obj:
        return obj
    if isinstance(obj, dict):
        return {"state_dict": obj}
    raise TrainError(f"{path}: expected a state dict, got {type(obj).__name__}")


def checkpoint_names(ckpt: dict[str, Any]) -> dict[int, str]:
    """The class names a checkpoint was trained on ({} for a bare state dict)."""
    return {int(k): str(v) for k, v in (ckpt.get("names") or {}).items()}


def model_from_checkpoint(ckpt: dict[str, Any], *, where: Path) -> Any:
    """Rebuild the model a checkpoint of ours describes (variant, classes, size), in eval mode."""
    names = checkpoint_names(ckpt)
    if not names:
        raise TrainError(f"{where}: checkpoint has no class names (train it with vision-train)")
    model = build_model(
        str(ckpt.get("variant", DEFAULT_VARIANT)),
        len(names) + 1,
        int(ckpt.get("imgsz", DEFAULT_IMGSZ)),
    )
    model.load_state_dict(ckpt["state_dict"])
    return model.eval()


def save_checkpoint(
    path: Path,
    model: Any,
    variant: str,
    names: dict[int, str],
    imgsz: int,
    **extra: Any,
) -> Path:
    """Write atomically (temp file + rename): a kill never leaves half a checkpoint."""
    import torch

    tmp = path.with_name(path.name + ".tmp")
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    torch.save(
        {"state_dict": state, "variant": variant, "names": names, "imgsz": imgsz, **extra},
        str(tmp),
    )
    tmp.replace(path)
    return path
