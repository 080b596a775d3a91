"""The torchvision Faster R-CNN trainer: same YOLO dataset, SGD, mAP50 on val, export."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vision_core.formats.yolo import boxes_to_arrays, label_path_for, read_label_file
from vision_core.kernel import RunContext
from vision_core.media import read_image
from vision_core.metrics import MetricAccumulator
from vision_train.backends.common import check_device, local_file, record_dry_run
from vision_train.dataset import DatasetInfo, validate_yolo_dataset
from vision_train.errors import TrainError

VARIANTS = ("mobilenet_v3", "resnet50_fpn", "resnet50_fpn_v2", "resnet18_fpn")


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
    """Our checkpoint: {"state_dict", "variant", "names", "imgsz"}; a bare state dict works too."""
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


def _sample(path: Path, names: dict[int, str]) -> tuple[Any, dict[str, Any]]:
    import cv2
    import torch

    img = read_image(path)
    h, w = img.shape[:2]
    boxes, _, cls = boxes_to_arrays(read_label_file(label_path_for(path)), w, h)
    x = torch.from_numpy(cv2.cvtColor(img, cv2.COLOR_BGR2RGB)).permute(2, 0, 1).float().div_(255.0)
    target = {
        "boxes": torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        "labels": torch.as_tensor(cls + 1, dtype=torch.int64),  # 0 is background
    }
    return x, target


def _collate(batch: list[tuple[Path, dict[int, str]]]) -> list[tuple[Any, dict[str, Any]]]:
    return [_sample(p, n) for p, n in batch]


def evaluate_torch(
    model: Any, images: Sequence[Path], names: dict[int, str], device: str
) -> dict[str, Any]:
    import torch

    model.eval()
    acc = MetricAccumulator(names)
    with torch.no_grad():
        for path in images:
            x, target = _sample(path, names)
            out = model([x.to(device)])[0]
            acc.add(
                out["boxes"].cpu().numpy(),
                out["scores"].cpu().numpy(),
                out["labels"].cpu().numpy() - 1,
                target["boxes"].numpy(),
                target["labels"].numpy() - 1,
            )
    return acc.compute().as_dict()


def save_checkpoint(
    path: Path, model: Any, variant: str, names: dict[int, str], imgsz: int
) -> Path:
    import torch

    tmp = path.with_suffix(".tmp")
    torch.save(
        {"state_dict": model.state_dict(), "variant": variant, "names": names, "imgsz": imgsz},
        str(tmp),
    )
    tmp.replace(path)
    return path


def run_faster_rcnn_train(ctx: RunContext) -> dict[str, Any]:
    cfg = ctx.config
    f = cfg.train.faster_rcnn
    log = ctx.logger
    info: DatasetInfo = validate_yolo_dataset(cfg.data.yolo_dataset_dir)
    device = check_device(cfg.train.device)
    if device not in {"cpu", "mps"}:
        device = "cuda:" + device.removeprefix("cuda:").split(",")[0]
    start = (
        local_file(f.weights, "train.faster_rcnn.weights", suffixes=(".pt", ".pth"))
        if f.weights
        else None
    )
    model = build_model(f.variant, info.nc + 1, f.imgsz)
    if start is not None:
        ckpt = load_checkpoint(start)
        try:
            model.load_state_dict(ckpt["state_dict"])
        except RuntimeError as exc:
            raise TrainError(
                f"train.faster_rcnn.weights: {start} does not fit variant {f.variant!r} with {info.nc} classes: {str(exc)[:300]}"
            ) from None
    train_images = list(info.splits["train"])
    if f.max_samples:
        train_images = train_images[: f.max_samples]
    summary = {
        "dataset": str(info.root),
        "classes": info.names,
        "train_images": len(train_images),
        "val_images": len(info.splits["val"]),
        "variant": f.variant,
        "weights": str(start) if start else None,
        "device": device,
    }
    log.info(
        "train.dataset",
        f"dataset ok: {len(train_images)} train / {summary['val_images']} val images, {info.nc} classes",
    )
    if cfg.train.dry_run:
        return record_dry_run(ctx, summary)

    import torch
    from torch.utils.data import DataLoader

    torch.manual_seed(cfg.run.seed)
    random.seed(cfg.run.seed)
    model.to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=f.lr, momentum=f.momentum, weight_decay=f.weight_decay)
    loader = DataLoader(
        [(p, info.names) for p in train_images],
        batch_size=f.batch,
        shuffle=True,
        num_workers=f.workers,
        collate_fn=_collate,
        generator=torch.Generator().manual_seed(cfg.run.seed),
    )
    ctx.metrics.update(summary)
    epochs: list[dict[str, Any]] = []
    ctx.metrics["epochs"] = epochs
    best_map50, best_path = -1.0, ctx.run_dir / "best.pt"
    for epoch in range(1, cfg.train.epochs + 1):
        model.train()
        t0 = time.perf_counter()
        total, n = 0.0, 0
        parts: dict[str, float] = {}
        for batch in loader:
            images = [x.to(device) for x, _ in batch]
            targets = [{k: v.to(device) for k, v in t.items()} for _, t in batch]
            losses = model(images, targets)
            loss = sum(losses.values())
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss)
            n += 1
            for k, v in losses.items():
                parts[k] = parts.get(k, 0.0) + float(v)
        val = evaluate_torch(model, info.splits["val"], info.names, device)
        rec = {
            "epoch": epoch,
            "train_loss": round(total / max(n, 1), 5),
            **{k: round(v / max(n, 1), 5) for k, v in parts.items()},
            "mAP50": val["map50"],
            "mAP50-95": val["map50_95"],
            "seconds": round(time.perf_counter() - t0, 2),
        }
        epochs.append(rec)
        log.info(
            "train.epoch",
            f"epoch {epoch}/{cfg.train.epochs} loss {rec['train_loss']:.3f} mAP50 {val['map50']:.3f}",
            **rec,
        )
        if val["map50"] > best_map50:
            best_map50 = val["map50"]
            save_checkpoint(best_path, model, f.variant, info.names, f.imgsz)
    model.to("cpu")
    save_checkpoint(ctx.run_dir / "last.pt", model, f.variant, info.names, f.imgsz)
    (ctx.run_dir / "class_map.json").write_text(
        json.dumps({str(k): v for k, v in info.names.items()}, indent=2)
    )
    ctx.metrics["epochs_trained"] = len(epochs)
    ctx.metrics["best_map50"] = best_map50
    ctx.metrics["best_map50_95"] = max(e["mAP50-95"] for e in epochs)

    from vision_train.pipeline import export_quantize_evaluate

    artifacts = export_quantize_evaluate(ctx, best_path, info, backend="faster_rcnn")
    return {
        "checkpoint": str(best_path),
        "class_map": str(ctx.run_dir / "class_map.json"),
        "epochs_trained": len(epochs),
        "best_map50": best_map50,
        **artifacts,
    }
