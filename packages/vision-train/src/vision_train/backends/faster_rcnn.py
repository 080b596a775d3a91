"""The torchvision Faster R-CNN backend: same YOLO dataset, SGD, mAP50 on val each epoch,
fine-tune from our checkpoint, resume, and its export and INT8 calibration."""

from __future__ import annotations

import json
import random
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vision_core.config import PipelineConfig
from vision_core.formats.yolo import boxes_to_arrays, label_path_for, read_label_file
from vision_core.kernel import RunContext
from vision_core.media import read_image
from vision_core.metrics import MetricAccumulator
from vision_train.backends.base import Calibration
from vision_train.backends.common import (
    check_device,
    dataset_summary,
    record_dry_run,
    set_threads,
)
from vision_train.dataset import DatasetInfo, validate_yolo_dataset
from vision_train.errors import ResumeError, TrainError
from vision_train.finetune import check_class_names, record_start, rounded, settle
from vision_train.models.faster_rcnn import (
    PREDICTOR_PREFIX,
    build_model,
    checkpoint_names,
    load_checkpoint,
    save_checkpoint,
)
from vision_train.resume import Interrupted, save_run_config
from vision_train.weights import local_file

KEY = "train.faster_rcnn.weights"


def _sample(path: Path) -> tuple[Any, dict[str, Any]]:
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


def _collate(batch: list[Path]) -> list[tuple[Any, dict[str, Any]]]:
    return [_sample(p) for p in batch]


def evaluate_torch(
    model: Any, images: Sequence[Path], names: dict[int, str], device: str
) -> dict[str, Any]:
    import torch

    model.eval()
    acc = MetricAccumulator(names)
    with torch.no_grad():
        for path in images:
            x, target = _sample(path)
            out = model([x.to(device)])[0]
            acc.add(
                out["boxes"].cpu().numpy(),
                out["scores"].cpu().numpy(),
                out["labels"].cpu().numpy() - 1,
                target["boxes"].numpy(),
                target["labels"].numpy() - 1,
            )
    return acc.compute().as_dict()


def _load_start(model: Any, ckpt: dict[str, Any], start: Path, variant: str, nc: int) -> None:
    """The starting weights; with a different number of classes (train.on_class_mismatch =
    use_dataset) the per-class predictor starts fresh."""
    state = dict(ckpt["state_dict"])
    own = model.state_dict()
    resized = [
        k
        for k, v in state.items()
        if k.startswith(PREDICTOR_PREFIX) and k in own and own[k].shape != v.shape
    ]
    for k in resized:
        del state[k]
    try:
        model.load_state_dict(state, strict=not resized)
    except RuntimeError as exc:
        raise TrainError(
            f"{KEY}: {start} does not fit variant {variant!r} with {nc} classes: {str(exc)[:300]}"
        ) from None


class FasterRCNNBackend:
    """`train.backend = "faster_rcnn"` (the `faster_rcnn` entry point of vision.trainers)."""

    name: str = "faster_rcnn"
    checkpoint_suffixes: tuple[str, ...] = (".pt", ".pth")

    def __call__(self, ctx: RunContext) -> dict[str, Any]:
        return self._run(ctx, None)

    def resume(self, ctx: RunContext, interrupted: Interrupted) -> dict[str, Any]:
        return self._run(ctx, interrupted)

    def checkpoint_names(self, checkpoint: Path) -> dict[int, str]:
        return checkpoint_names(load_checkpoint(checkpoint))

    def export_onnx(
        self, checkpoint: Path, out: Path, cfg: PipelineConfig, samples: Sequence[Path]
    ) -> dict[str, Any]:
        from vision_train.export.faster_rcnn import export_faster_rcnn

        return dict(
            export_faster_rcnn(checkpoint, out, opset=cfg.export.opset, sample_images=samples)
        )

    def calibration(self, cfg: PipelineConfig, fp32: Path) -> Calibration:
        from vision_train.export.faster_rcnn import frcnn_tensor

        # symbolic shape inference fails on this graph after minutes on a small CPU
        return Calibration(frcnn_tensor, {"op_types": ["Conv"], "symbolic_shape": False})

    # -- training ----------------------------------------------------------------------------

    def _run(self, ctx: RunContext, prev: Interrupted | None) -> dict[str, Any]:
        cfg = ctx.config
        f = cfg.train.faster_rcnn
        log = ctx.logger
        start = local_file(f.weights, KEY, suffixes=self.checkpoint_suffixes) if f.weights else None
        last_path = prev.run_dir / "last.pt" if prev else None
        if last_path is not None and not last_path.is_file():
            raise ResumeError(
                f"--resume: {last_path} not found: the run stopped before its first epoch "
                "ended, so there is nothing to continue (start it again)"
            )
        info: DatasetInfo = validate_yolo_dataset(cfg.data.yolo_dataset_dir)
        device = check_device(cfg.train.device)
        if device not in {"cpu", "mps"}:
            device = "cuda:" + device.removeprefix("cuda:").split(",")[0]
        import torch

        torch.manual_seed(cfg.run.seed)  # the initial weights too: the same run, the same model
        random.seed(cfg.run.seed)
        model = build_model(f.variant, info.nc + 1, f.imgsz)
        start_names: dict[int, str] = {}
        if start is not None:
            ckpt = load_checkpoint(start)
            start_names = checkpoint_names(ckpt)
            check_class_names(cfg, str(start), start_names, info.names, log, ctx.metrics)
            _load_start(model, ckpt, start, f.variant, info.nc)
        train_images = list(info.splits["train"])
        if f.max_samples:
            train_images = train_images[: f.max_samples]
        summary = dataset_summary(
            info,
            len(train_images),
            prev,
            log,
            variant=f.variant,
            weights=str(start) if start else None,
            finetune_from=str(start) if start else None,
            device=device,
        )
        if cfg.train.dry_run:
            return record_dry_run(ctx, summary)
        save_run_config(ctx.run_dir, cfg)

        from torch.utils.data import DataLoader

        ctx.metrics["threads"] = set_threads(cfg.train.threads)
        model.to(device)
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.SGD(params, lr=f.lr, momentum=f.momentum, weight_decay=f.weight_decay)
        ctx.metrics.update(summary)
        epochs: list[dict[str, Any]] = list(prev.epochs) if prev else []
        ctx.metrics["epochs"] = epochs
        best_path, last_out = ctx.run_dir / "best.pt", ctx.run_dir / "last.pt"
        best: dict[str, Any] = {"map50": -1.0, "map50_95": 0.0}
        first = 1
        if prev is not None and last_path is not None:
            state = load_checkpoint(last_path)
            model.load_state_dict(state["state_dict"])
            if "optimizer" in state:
                opt.load_state_dict(state["optimizer"])
            first = int(state.get("epoch", 0)) + 1
            best = dict(state.get("best", best))
            if (prev.run_dir / "best.pt").is_file():
                shutil.copyfile(prev.run_dir / "best.pt", best_path)
            log.info("train.resume", f"resuming {prev.run_dir} at epoch {first}")
        start_eval: dict[str, Any] | None = None
        if start is not None and len(start_names) == info.nc:
            start_eval = prev.start_eval if prev and prev.start_eval else None
            if start_eval is None:
                start_eval = rounded(evaluate_torch(model, info.splits["val"], info.names, device))
                log.info(
                    "train.start_eval",
                    f"epoch 0 (the starting model): mAP50 {start_eval['map50']:.3f}",
                    **start_eval,
                )
            record_start(ctx.metrics, epochs, start_eval)
        generator = torch.Generator()
        loader = DataLoader(
            train_images,
            batch_size=f.batch,
            shuffle=True,
            num_workers=f.workers,
            collate_fn=_collate,
            generator=generator,
        )
        t_train, cpu0 = time.perf_counter(), time.process_time()
        for epoch in range(first, cfg.train.epochs + 1):
            generator.manual_seed(cfg.run.seed + epoch)  # the same order resumed or not
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
                total += float(loss.detach())
                n += 1
                for k, v in losses.items():
                    parts[k] = parts.get(k, 0.0) + float(v.detach())
            val = evaluate_torch(model, info.splits["val"], info.names, device)
            rec = {
                "epoch": epoch,
                "train_loss": round(total / max(n, 1), 5),
                **{k: round(v / max(n, 1), 5) for k, v in parts.items()},
                "mAP50": val["map50"],
                "mAP50-95": val["map50_95"],
                "seconds": round(time.perf_counter() - t0, 2),
            }
            if val["map50"] > best["map50"]:
                best = rounded(val)
                save_checkpoint(best_path, model, f.variant, info.names, f.imgsz)
            # every epoch, atomically: what --resume continues from
            save_checkpoint(
                last_out,
                model,
                f.variant,
                info.names,
                f.imgsz,
                epoch=epoch,
                optimizer=opt.state_dict(),
                best=best,
            )
            epochs.append(rec)
            log.info(
                "train.epoch",
                f"epoch {epoch}/{cfg.train.epochs} loss {rec['train_loss']:.3f} mAP50 {val['map50']:.3f}",
                **rec,
            )
        ctx.metrics["train_seconds"] = round(time.perf_counter() - t_train, 1)
        ctx.metrics["train_cpu_seconds"] = round(time.process_time() - cpu0, 1)
        model.to("cpu")
        (ctx.run_dir / "class_map.json").write_text(
            json.dumps({str(k): v for k, v in info.names.items()}, indent=2)
        )
        trained = [e for e in epochs if e["epoch"] > 0]
        ctx.metrics["epochs_trained"] = len(trained)
        ctx.metrics["best_map50"] = best["map50"]
        ctx.metrics["best_map50_95"] = max((e["mAP50-95"] for e in trained), default=None)
        final = best_path
        if (
            start is not None
            and start_eval is not None
            and settle(cfg, ctx.metrics, start_eval, best, log)
        ):
            # the model epoch 0 evaluated: the starting weights, this run's names and size
            final = ctx.run_dir / "start.pt"
            model.load_state_dict(load_checkpoint(start)["state_dict"])
            save_checkpoint(final, model, f.variant, info.names, f.imgsz)

        from vision_train.pipeline import export_quantize_evaluate

        artifacts = export_quantize_evaluate(ctx, final, info, backend=self)
        return {
            "checkpoint": str(final),
            "class_map": str(ctx.run_dir / "class_map.json"),
            "epochs_trained": len(trained),
            "best_map50": best["map50"],
            **artifacts,
        }


BACKEND = FasterRCNNBackend()
