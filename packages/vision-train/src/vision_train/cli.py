"""vision-train: parse, load the config, call the kernel. No training logic here."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from vision_core.cli import config_options, load_cli_config, version_option
from vision_core.kernel import RunResult


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
    for label, key in (("FP32", "fp32"), ("INT8", "int8")):
        if isinstance(m.get(key), dict):
            lines.append(
                f"  {label} mAP50 {m[key]['map50']:.3f}  mAP50-95 {m[key]['map50_95']:.3f}"
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
    type=click.Choice(["yolo", "faster_rcnn"]),
    default=None,
    help="Training backend (default: train.backend).",
)
@click.pass_context
def main(
    ctx: click.Context, config_path: Path | None, overrides: tuple[str, ...], backend: str | None
) -> None:
    """Train a detector on a YOLO dataset, export ONNX (FP32 + INT8), evaluate.

    `vision-train --config pipeline.toml` runs the whole job; the subcommands run a part.
    """
    if ctx.invoked_subcommand is not None:
        return
    if config_path is None and not overrides:
        click.echo(ctx.get_help())
        return
    from vision_core.kernel import VisionKernel

    cfg = load_cli_config(config_path, overrides, record_as=("train", backend or "unknown"))
    result = VisionKernel(cfg).run_train(backend)
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
    type=click.Choice(["yolo", "faster_rcnn"]),
    default=None,
    help="Default: train.backend.",
)
def export(
    config_path: Path | None, overrides: tuple[str, ...], weights: Path, backend: str | None
) -> None:
    """Export a checkpoint to model.onnx (+ model-int8.onnx) and evaluate on the dataset."""
    from vision_core.kernel import RunContext, VisionKernel

    cfg = load_cli_config(config_path, overrides, record_as=("export", backend or "unknown"))
    chosen = backend or cfg.train.backend

    def run(ctx: RunContext) -> dict[str, Any]:
        from vision_train.backends.common import local_file
        from vision_train.dataset import validate_yolo_dataset
        from vision_train.pipeline import export_quantize_evaluate

        ckpt = local_file(str(weights), "--weights", suffixes=(".pt", ".pth"))
        info = validate_yolo_dataset(cfg.data.yolo_dataset_dir)
        return export_quantize_evaluate(ctx, ckpt, info, backend=chosen)  # type: ignore[arg-type]

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
    """mAP50 / mAP50-95 of an ONNX model on data.yolo_dataset_dir (the device runtime's code)."""
    from vision_core.kernel import RunContext, VisionKernel

    cfg = load_cli_config(config_path, overrides, record_as=("eval", "onnx"))

    def run(ctx: RunContext) -> dict[str, Any]:
        from vision_train.dataset import validate_yolo_dataset
        from vision_train.evaluate import evaluate_onnx

        info = validate_yolo_dataset(cfg.data.yolo_dataset_dir)
        metrics = evaluate_onnx(model_path, info, split=split)
        ctx.metrics[split] = metrics.as_dict()
        ctx.metrics["fp32"] = metrics.as_dict()
        return {"model_path": str(model_path.resolve())}

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
