"""vision-train: parse, load the config, call the kernel. No training logic here."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from vision_core.cli import config_options, load_cli_config, version_option


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

    Run `vision-train --config pipeline.toml` for the whole job, or a subcommand for a part.
    """
    if ctx.invoked_subcommand is not None:
        return
    if config_path is None and not overrides:
        click.echo(ctx.get_help())
        return
    from vision_core.kernel import VisionKernel

    cfg = load_cli_config(config_path, overrides)
    result = VisionKernel(cfg).run_train(backend)
    click.echo(f"{result.status}: run dir {result.run_context.run_dir}")
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
