"""vision-train: parse, load the config, call the kernel. No training logic here."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from vision_core.cli import config_options, fail, keys_command, load_cli_config, version_option
from vision_core.kernel import RunResult
from vision_train.backends.base import backend_names


def _summary(result: RunResult) -> None:
    """A short human summary of a run (the full figures are in metrics.json)."""
    m = result.run_context.metrics
    lines = [
        f"{result.status}: {result.run_context.mode} ({result.backend}) in {result.elapsed_ms / 1000:.1f}s"
    ]
    if result.error:
        lines.append(f"  error: {result.error}")
    if m.get("dry_run"):
        lines.append("  dry run: validated, nothing trained")
    ft = m.get("finetune")
    if isinstance(ft, dict) and "map50_after" in ft:
        kept = "  (kept the starting weights)" if ft.get("kept") == "start" else ""
        lines.append(
            f"  fine-tune mAP50 {ft['map50_before']:.3f} before -> {ft['map50_after']:.3f} after{kept}"
        )
    for label, key in (("FP32", "fp32"), ("INT8", "int8")):
        if isinstance(m.get(key), dict):
            note = " (FP32 fallback)" if m[key].get("precision") == "fp32" and key == "int8" else ""
            lines.append(
                f"  {label} mAP50 {m[key]['map50']:.3f}  mAP50-95 {m[key]['map50_95']:.3f}{note}"
            )
    if "int8_speedup" in m:
        lat = m.get("latency_ms_p50", {})
        lines.append(
            f"  INT8 speedup {m['int8_speedup']:.2f}x (p50 {lat.get('fp32')} ms -> {lat.get('int8')} ms)"
        )
    for problem in m.get("int8_problems", []):
        lines.append(f"  warning: {problem}")
    for key in ("model_path", "model_int8_path"):
        if result.artifacts.get(key):
            lines.append(f"  {key}: {result.artifacts[key]}")
    lines.append(f"  run dir: {result.run_context.run_dir}")
    click.echo("\n".join(lines))


@click.group(invoke_without_command=True)
@version_option("vision-train")
@config_options
@click.option(
    "--backend",
    type=click.Choice(backend_names()),
    default=None,
    help="Training backend (default: train.backend).",
)
@click.option(
    "--resume",
    "resume_dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Continue an interrupted run (Ctrl-C, kill) to its train.epochs, in a new run dir.",
)
@click.pass_context
def main(
    ctx: click.Context,
    config_path: Path | None,
    overrides: tuple[str, ...],
    backend: str | None,
    resume_dir: Path | None,
) -> None:
    """Train a detector on a YOLO dataset, export ONNX (FP32 + INT8), evaluate.

    `vision-train --config pipeline.toml` runs the whole job; the subcommands run a part.
    """
    if ctx.invoked_subcommand is not None:
        return
    if resume_dir is not None:
        if config_path is not None or overrides or backend is not None:
            fail(
                "--resume continues a run with its own settings (RUN_DIR/config.json): "
                "do not pass --config, --set or --backend with it; start a new run to change them",
                2,
            )
        _resume(resume_dir)
        return
    if config_path is None and not overrides:
        click.echo(ctx.get_help())
        return
    from vision_core.kernel import VisionKernel

    if backend is not None:  # into the config, so the run's config.json says what ran
        overrides = (*overrides, f"train.backend={backend}")
    cfg = load_cli_config(config_path, overrides, record_as=("train", backend or "unknown"))
    result = VisionKernel(cfg).run_train()
    _summary(result)
    sys.exit(result.exit_code)


def _resume(run_dir: Path) -> None:
    from vision_core.errors import VisionError
    from vision_core.kernel import VisionKernel
    from vision_train.backends.base import get_backend
    from vision_train.resume import load_interrupted

    try:
        interrupted = load_interrupted(run_dir)
        backend = get_backend(interrupted.backend)
    except VisionError as exc:
        fail(str(exc), 2)
        return
    result = VisionKernel(interrupted.config).run_callable(
        "train", backend.name, lambda ctx: backend.resume(ctx, interrupted)
    )
    _summary(result)
    sys.exit(result.exit_code)


@main.command()
@config_options
@click.option(
    "--weights",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="A YOLO .pt or a Faster R-CNN state dict from vision-train.",
)
@click.option(
    "--backend",
    type=click.Choice(backend_names()),
    default=None,
    help="Default: train.backend.",
)
def export(
    config_path: Path | None, overrides: tuple[str, ...], weights: Path, backend: str | None
) -> None:
    """Export a checkpoint to model.onnx (+ model-int8.onnx) and evaluate on the dataset.

    The checkpoint is only read: the export works on a copy in a temporary dir and writes
    into the new run dir, never beside the checkpoint.
    """
    from vision_core.kernel import RunContext, VisionKernel

    if backend is not None:
        overrides = (*overrides, f"train.backend={backend}")
    cfg = load_cli_config(config_path, overrides, record_as=("export", backend or "unknown"))
    chosen = cfg.train.backend

    def run(ctx: RunContext) -> dict[str, Any]:
        from vision_train.backends.base import get_backend
        from vision_train.weights import local_file

        trainer = get_backend(chosen)
        ckpt = local_file(str(weights), "--weights", suffixes=trainer.checkpoint_suffixes)

        from vision_train.dataset import validate_yolo_dataset
        from vision_train.finetune import check_class_names
        from vision_train.pipeline import export_quantize_evaluate

        info = validate_yolo_dataset(cfg.data.yolo_dataset_dir)
        names = trainer.checkpoint_names(ckpt)
        check_class_names(cfg, str(ckpt), names, info.names, ctx.logger, ctx.metrics)
        return export_quantize_evaluate(ctx, ckpt, info, backend=trainer)

    result = VisionKernel(cfg).run_callable("export", chosen, run)
    _summary(result)
    sys.exit(result.exit_code)


@main.command(name="eval")
@config_options
@click.option(
    "--model",
    "model_path",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="ONNX model.",
)
@click.option("--split", type=click.Choice(["train", "val"]), default="val")
def eval_cmd(
    config_path: Path | None, overrides: tuple[str, ...], model_path: Path, split: str
) -> None:
    """mAP50 / mAP50-95 of an ONNX model on data.yolo_dataset_dir (the device runtime's code).

    The figures are filed under the split and under the model's precision ("fp32" or
    "int8", from its metadata or its graph); class names that differ from the dataset's
    are a warning (mAP is then computed by class id).
    """
    from vision_core.kernel import RunContext, VisionKernel

    cfg = load_cli_config(config_path, overrides, record_as=("eval", "onnx"))

    def run(ctx: RunContext) -> dict[str, Any]:
        from vision_core.infer.base import parse_names
        from vision_train.dataset import validate_yolo_dataset
        from vision_train.evaluate import evaluate_onnx
        from vision_train.export.common import model_facts
        from vision_train.finetune import warn_class_mismatch

        if not model_path.is_file():
            raise FileNotFoundError(f"--model: file not found: {model_path}")
        info = validate_yolo_dataset(cfg.data.yolo_dataset_dir)
        meta, precision = model_facts(model_path)
        names = parse_names(meta.get("names"))
        warn_class_mismatch(str(model_path), names, info.names, ctx.logger, ctx.metrics)
        metrics = evaluate_onnx(model_path, info, split=split)
        ctx.metrics[split] = metrics.as_dict()
        ctx.metrics[precision] = {**metrics.as_dict(), "precision": precision}
        return {"model_path": str(model_path.resolve()), "model_precision": precision}

    result = VisionKernel(cfg).run_callable("eval", "onnx", run)
    _summary(result)
    sys.exit(result.exit_code)


@main.command()
@config_options
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Output dir (default: data.yolo_dataset_dir).",
)
def synth(config_path: Path | None, overrides: tuple[str, ...], out: Path | None) -> None:
    """Generate the synthetic shapes dataset (YOLO format) from the synth.* settings."""
    from vision_core.synth import generate_dataset

    cfg = load_cli_config(config_path, overrides)
    s = cfg.synth
    path = generate_dataset(
        out or Path(cfg.data.yolo_dataset_dir),
        train_images=s.train_images,
        val_images=s.val_images,
        imgsz=s.imgsz,
        seed=cfg.run.seed,
        max_objects=s.max_objects,
    )
    click.echo(f"wrote {s.train_images} train + {s.val_images} val images: {path}")


main.add_command(keys_command)
