"""The ultralytics YOLO backend: train (offline) from a model YAML or fine-tune a .pt,
resume, and its export and INT8 calibration."""

from __future__ import annotations

import contextlib
import math
import shutil
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vision_core.config import PipelineConfig
from vision_core.kernel import RunContext
from vision_train.backends.base import Calibration
from vision_train.backends.common import (
    check_device,
    dataset_summary,
    record_dry_run,
    set_threads,
)
from vision_train.dataset import validate_yolo_dataset
from vision_train.errors import ResumeError, TrainError
from vision_train.finetune import StartPoint, check_class_names, record_start, rounded, settle
from vision_train.models.yolo import resolve_yolo_weights, yolo_checkpoint_names
from vision_train.resume import Interrupted, save_run_config
from vision_train.ultralytics_env import offline_ultralytics

SAVE_DIR = "ultralytics"  # ultralytics' own run folder inside our run dir


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


def _resumable(run_dir: Path) -> Path:
    """The interrupted run's last.pt, checked without importing anything heavy."""
    last = run_dir / SAVE_DIR / "weights" / "last.pt"
    if not last.is_file():
        raise ResumeError(
            f"--resume: {last} not found: the run stopped before its first epoch ended, "
            "so there is nothing to continue (start it again)"
        )
    return last


class YoloBackend:
    """`train.backend = "yolo"` (registered as the `yolo` entry point of vision.trainers)."""

    name: str = "yolo"
    checkpoint_suffixes: tuple[str, ...] = (".pt",)

    def __call__(self, ctx: RunContext) -> dict[str, Any]:
        return self._run(ctx, None)

    def resume(self, ctx: RunContext, interrupted: Interrupted) -> dict[str, Any]:
        return self._run(ctx, interrupted)

    def checkpoint_names(self, checkpoint: Path) -> dict[int, str]:
        return yolo_checkpoint_names(checkpoint)

    def export_onnx(
        self, checkpoint: Path, out: Path, cfg: PipelineConfig, samples: Sequence[Path]
    ) -> dict[str, Any]:
        from vision_train.export.yolo import export_yolo

        return export_yolo(
            checkpoint,
            out,
            imgsz=cfg.train.yolo.imgsz,
            opset=cfg.export.opset,
            dynamic=cfg.export.dynamic,
            sample_images=samples,
        )

    def calibration(self, cfg: PipelineConfig, fp32: Path) -> Calibration:
        from vision_train.export.common import yolo_tensor
        from vision_train.export.quantize import yolo_head_nodes_to_exclude

        imgsz = cfg.train.yolo.imgsz
        return Calibration(
            lambda p: yolo_tensor(p, imgsz), {"exclude": yolo_head_nodes_to_exclude(fp32)}
        )

    # -- training ----------------------------------------------------------------------------

    def _run(self, ctx: RunContext, prev: Interrupted | None) -> dict[str, Any]:
        cfg = ctx.config
        y = cfg.train.yolo
        log = ctx.logger
        start = resolve_yolo_weights(y.weights)  # first: a bad path fails in milliseconds
        last = _resumable(prev.run_dir) if prev else None
        info = validate_yolo_dataset(cfg.data.yolo_dataset_dir)
        device = check_device(cfg.train.device)
        offline_ultralytics(ctx.workdir / ".ultralytics")
        summary = dataset_summary(
            info,
            len(info.splits["train"]),
            prev,
            log,
            train_objects=info.labels["train"],
            weights=start.weights,
            finetune_from=str(start.checkpoint) if start.checkpoint else None,
            device=device,
        )
        start_names: dict[int, str] = {}
        if start.checkpoint is not None:
            start_names = yolo_checkpoint_names(start.checkpoint)
            check_class_names(cfg, str(start.checkpoint), start_names, info.names, log, ctx.metrics)
        data_yaml = info.write_normalised_yaml(ctx.run_dir / "dataset.yaml")
        if cfg.train.dry_run:
            return record_dry_run(ctx, summary)
        save_run_config(ctx.run_dir, cfg)

        from ultralytics import YOLO

        epochs: list[dict[str, Any]] = list(prev.epochs) if prev else []
        ctx.metrics.update(summary)
        ctx.metrics["epochs"] = epochs
        start_eval: dict[str, Any] | None = None
        if start.checkpoint is not None and len(start_names) == info.nc:
            start_eval = prev.start_eval if prev and prev.start_eval else None
            if start_eval is None:
                start_eval = self._evaluate_start(ctx, start, data_yaml, device)
            record_start(ctx.metrics, epochs, start_eval)

        def on_fit_epoch_end(trainer: Any) -> None:
            rec = _epoch_record(trainer)
            if not trainer.validator.training:
                # the final validation of best.pt (ultralytics fires this once more)
                ctx.metrics["best_checkpoint_val"] = {k: v for k, v in rec.items() if k != "epoch"}
                return
            epochs.append(rec)
            log.info("train.epoch", f"epoch {rec['epoch']}/{cfg.train.epochs}", **rec)

        def threads(trainer: Any) -> None:
            # after ultralytics' own setting (cores-1): train.threads, and what is in use
            ctx.metrics["threads"] = set_threads(cfg.train.threads)

        callbacks = {
            "on_fit_epoch_end": on_fit_epoch_end,
            "on_pretrain_routine_start": threads,
            "on_train_start": threads,
        }
        t0, cpu0 = time.perf_counter(), time.process_time()
        if last is not None:
            # continue in this run dir, on a copy of the interrupted run's ultralytics folder
            shutil.copytree(last.parents[1], ctx.run_dir / SAVE_DIR, dirs_exist_ok=True)
            last = ctx.run_dir / SAVE_DIR / "weights" / "last.pt"
            _check_resumable(last)
            model = YOLO(str(last), task="detect")
            for event, fn in callbacks.items():
                model.add_callback(event, fn)
            log.info("train.resume", f"resuming {prev.run_dir if prev else ''} from {last}")
            model.train(
                resume=str(last),
                data=str(data_yaml),
                save_dir=str(ctx.run_dir / SAVE_DIR),
                device=device,
                workers=y.workers,
            )
        else:
            model = YOLO(start.weights, task="detect")
            for event, fn in callbacks.items():
                model.add_callback(event, fn)
            model.train(**self._train_args(cfg, start, data_yaml, device, ctx.run_dir))
        ctx.metrics["train_seconds"] = round(time.perf_counter() - t0, 1)
        ctx.metrics["train_cpu_seconds"] = round(time.process_time() - cpu0, 1)
        trainer = model.trainer
        best = Path(trainer.best if Path(trainer.best).is_file() else trainer.last)
        if not best.is_file():
            raise TrainError(f"training finished without a checkpoint in {trainer.save_dir}")
        trained = [e for e in epochs if e["epoch"] > 0]
        ctx.metrics["epochs_trained"] = len(trained)
        ctx.metrics["best_map50"] = max((e.get("mAP50", 0.0) for e in trained), default=None)
        ctx.metrics["best_map50_95"] = max((e.get("mAP50-95", 0.0) for e in trained), default=None)
        log.info(
            "train.done",
            f"trained {len(trained)} epochs; best mAP50 {ctx.metrics['best_map50']}",
            checkpoint=str(best),
        )
        if start_eval is not None and start.checkpoint is not None:
            final = ctx.metrics.get("best_checkpoint_val") or max(
                trained, key=lambda e: (e.get("mAP50", 0.0), e.get("mAP50-95", 0.0))
            )
            figures = {"map50": final.get("mAP50"), "map50_95": final.get("mAP50-95")}
            if settle(cfg, ctx.metrics, start_eval, figures, log):
                best = ctx.run_dir / "start.pt"
                shutil.copyfile(start.checkpoint, best)

        from vision_train.pipeline import export_quantize_evaluate

        artifacts = export_quantize_evaluate(ctx, best, info, backend=self)
        return {
            "checkpoint": str(best),
            "epochs_trained": len(trained),
            "best_map50": ctx.metrics["best_map50"],
            **artifacts,
        }

    def _train_args(
        self, cfg: PipelineConfig, start: StartPoint, data_yaml: Path, device: str, run_dir: Path
    ) -> dict[str, Any]:
        y = cfg.train.yolo
        args: dict[str, Any] = {
            "data": str(data_yaml),
            "epochs": cfg.train.epochs,
            "imgsz": y.imgsz,
            "batch": y.batch,
            "device": device,
            "seed": cfg.run.seed,
            "deterministic": True,
            "workers": y.workers,
            "patience": y.patience,
            "mosaic": y.mosaic,
            "close_mosaic": min(10, max(0, cfg.train.epochs // 4)),
            "project": str(run_dir),
            "name": SAVE_DIR,
            "exist_ok": True,
            "plots": False,
            "verbose": False,
            "amp": device != "cpu",
        }
        if start.finetune:  # measured: see the package README, "Fine-tuning"
            args |= {
                "optimizer": y.finetune_optimizer,
                "lr0": y.finetune_lr0,
                "warmup_epochs": y.finetune_warmup_epochs,
            }
        else:
            args |= {
                "optimizer": y.optimizer,
                "lr0": y.lr0,
                "warmup_epochs": min(3.0, max(0.0, cfg.train.epochs / 10)),
            }
        return args

    def _evaluate_start(
        self, ctx: RunContext, start: StartPoint, data_yaml: Path, device: str
    ) -> dict[str, Any]:
        """Epoch 0: the starting checkpoint on the val split, validated as ultralytics
        validates best.pt at the end (so the two compare)."""
        from ultralytics import YOLO

        y = ctx.config.train.yolo
        with warnings.catch_warnings():
            warnings.simplefilter("default")  # a caller's warnings-as-errors must not break val
            res = YOLO(start.weights, task="detect").val(
                data=str(data_yaml),
                imgsz=y.imgsz,
                batch=y.batch,
                device=device,
                workers=y.workers,
                plots=False,
                verbose=False,
                project=str(ctx.run_dir),
                name="val-start",
                exist_ok=True,
            )
        with contextlib.suppress(OSError):  # ultralytics makes a folder for plots (off)
            (ctx.run_dir / "val-start").rmdir()
        figures = rounded({"map50": res.box.map50, "map50_95": res.box.map})
        ctx.logger.info(
            "train.start_eval",
            f"epoch 0 (the starting model): mAP50 {figures['map50']:.3f} mAP50-95 {figures['map50_95']:.3f}",
            **figures,
        )
        return figures


def _check_resumable(last: Path) -> None:
    import torch

    ckpt = torch.load(str(last), map_location="cpu", weights_only=False)
    if not isinstance(ckpt, dict) or ckpt.get("epoch", -1) < 0 or ckpt.get("optimizer") is None:
        raise ResumeError(
            f"--resume: {last} is a final checkpoint (its training finished): nothing to "
            f"continue; export it with `vision-train export --weights {last}`"
        )


BACKEND = YoloBackend()
