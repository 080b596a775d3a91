"""The ultralytics YOLO trainer: validate, train (offline), export, quantize, evaluate."""

from __future__ import annotations

import contextlib
import math
from pathlib import Path
from typing import Any

from vision_core.kernel import RunContext
from vision_train.backends.common import check_device, local_file, record_dry_run
from vision_train.dataset import validate_yolo_dataset
from vision_train.errors import TrainError
from vision_train.ultralytics_env import offline_ultralytics


def resolve_yolo_weights(weights: str) -> str:
    """A model YAML known to ultralytics or a local file (.yaml/.pt); never a hub name."""
    if weights.endswith((".yaml", ".yml")):
        if Path(weights).is_file():
            return str(Path(weights).resolve())
        import ultralytics

        cfg_root = Path(ultralytics.__file__).parent / "cfg" / "models"
        stem = Path(weights).stem
        # ultralytics derives the scale from the name: yolo11n.yaml -> yolo11.yaml + scale n
        base = stem[:-1] if stem[-1:] in "nsmlx" else stem
        if any(cfg_root.rglob(f"{base}.yaml")) or any(cfg_root.rglob(f"{stem}.yaml")):
            return weights
        raise TrainError(
            f"train.yolo.weights: model YAML not found: {weights} (not a local file nor an ultralytics model config)"
        )
    return str(local_file(weights, "train.yolo.weights", suffixes=(".pt",)))


def _epoch_record(trainer: Any) -> dict[str, Any]:
    rec: dict[str, Any] = {"epoch": int(trainer.epoch) + 1}
    with contextlib.suppress(Exception):
        losses = trainer.label_loss_items(trainer.tloss, prefix="train")
        rec.update({k.replace("/", "_"): round(float(v), 5) for k, v in losses.items()})
    for key, value in (trainer.metrics or {}).items():
        if isinstance(value, (int, float)) and math.isfinite(value):
            rec[key.replace("metrics/", "").replace("(B)", "").replace("/", "_")] = round(
                float(value), 5
            )
    return rec


def run_yolo_train(ctx: RunContext) -> dict[str, Any]:
    cfg = ctx.config
    y = cfg.train.yolo
    log = ctx.logger
    info = validate_yolo_dataset(cfg.data.yolo_dataset_dir)
    device = check_device(cfg.train.device)
    offline_ultralytics(ctx.workdir / ".ultralytics")
    weights = resolve_yolo_weights(y.weights)
    summary = {
        "dataset": str(info.root),
        "classes": info.names,
        "train_images": len(info.splits["train"]),
        "val_images": len(info.splits["val"]),
        "train_objects": info.labels["train"],
        "weights": weights,
        "device": device,
    }
    log.info(
        "train.dataset",
        f"dataset ok: {summary['train_images']} train / {summary['val_images']} val images, {info.nc} classes",
    )
    data_yaml = info.write_normalised_yaml(ctx.run_dir / "dataset.yaml")
    if cfg.train.dry_run:
        return record_dry_run(ctx, summary)

    from ultralytics import YOLO

    model = YOLO(weights, task="detect")
    epochs: list[dict[str, Any]] = []
    ctx.metrics.update(summary)
    ctx.metrics["epochs"] = epochs

    def on_fit_epoch_end(trainer: Any) -> None:
        rec = _epoch_record(trainer)
        if rec["epoch"] > cfg.train.epochs or (epochs and rec["epoch"] <= epochs[-1]["epoch"]):
            # ultralytics fires this once more after validating best.pt at the end
            ctx.metrics["best_checkpoint_val"] = {k: v for k, v in rec.items() if k != "epoch"}
            return
        epochs.append(rec)
        log.info("train.epoch", f"epoch {rec['epoch']}/{cfg.train.epochs}", **rec)

    model.add_callback("on_fit_epoch_end", on_fit_epoch_end)
    model.train(
        data=str(data_yaml),
        epochs=cfg.train.epochs,
        imgsz=y.imgsz,
        batch=y.batch,
        device=device,
        seed=cfg.run.seed,
        deterministic=True,
        workers=y.workers,
        patience=y.patience,
        lr0=y.lr0,
        optimizer=y.optimizer,
        warmup_epochs=min(3.0, max(0.0, cfg.train.epochs / 10)),
        close_mosaic=min(10, max(0, cfg.train.epochs // 4)),
        project=str(ctx.run_dir),
        name="ultralytics",
        exist_ok=True,
        plots=False,
        verbose=False,
        amp=device != "cpu",
    )
    trainer = model.trainer
    best = Path(trainer.best if Path(trainer.best).is_file() else trainer.last)
    if not best.is_file():
        raise TrainError(f"training finished without a checkpoint in {trainer.save_dir}")
    map50s = [e.get("mAP50", 0.0) for e in epochs]
    ctx.metrics["epochs_trained"] = len(epochs)
    ctx.metrics["best_map50"] = max(map50s) if map50s else None
    ctx.metrics["best_map50_95"] = max((e.get("mAP50-95", 0.0) for e in epochs), default=None)
    log.info(
        "train.done",
        f"trained {len(epochs)} epochs; best mAP50 {ctx.metrics['best_map50']}",
        checkpoint=str(best),
    )

    from vision_train.pipeline import export_quantize_evaluate

    artifacts = export_quantize_evaluate(ctx, best, info, backend="yolo")
    return {
        "checkpoint": str(best),
        "epochs_trained": len(epochs),
        "best_map50": ctx.metrics["best_map50"],
        **artifacts,
    }
