"""vision-label: parse, load the config, call the kernel. No labeling logic here."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from vision_core.cli import (
    config_options,
    detections_line,
    echo,
    echo_json,
    echo_summary,
    keys_command,
    load_cli_config,
    summary_head,
    version_option,
)
from vision_core.kernel import RunResult


def _summary(result: RunResult) -> None:
    """A short human summary (the full figures are in the run dir's metrics.json)."""
    m = result.run_context.metrics
    lines = summary_head(result, "autolabel")
    if "images_seen" in m:
        lines.append(
            f"  images seen {m['images_seen']}, labeled {m['labeled']}, skipped {m['skipped']}, "
            f"merged {m['merged']}, empty {m['empty']}, failed {m['failed']}"
        )
        lines.append(detections_line(m))
        lines.append(f"  {m.get('images_per_sec', 0.0):.1f} images/s")
    llm = m.get("llm")
    if isinstance(llm, dict):
        lines.append(
            f"  llm: {llm['requests']} request(s), {llm['cache_hits']} cache hit(s), "
            f"{llm['retries']} retr(ies), {llm['total_tokens']} tokens"
        )
    for failure in m.get("failures", [])[:5]:
        lines.append(f"  failed: {failure['image']}: {failure['error']}")
    if result.artifacts.get("labeled_dir"):
        lines.append(f"  labeled dir: {result.artifacts['labeled_dir']}")
    echo_summary(result, lines)


def _run(backend: str, config_path: Path | None, overrides: tuple[str, ...]) -> None:
    from vision_core.kernel import VisionKernel

    cfg = load_cli_config(config_path, overrides, record_as=("autolabel", backend))
    result = VisionKernel(cfg).run_autolabel(backend)
    _summary(result)
    sys.exit(result.exit_code)


@click.group()
@version_option("vision-label")
def main() -> None:
    """Autolabel images into a YOLO dataset with an ONNX model or a vision LLM."""


@main.command()
@config_options
def model(config_path: Path | None, overrides: tuple[str, ...]) -> None:
    """Label data.unlabeled_dir with the ONNX model of infer.model_path (thresholds: infer.*)."""
    _run("model", config_path, overrides)


@main.command()
@config_options
def llm(config_path: Path | None, overrides: tuple[str, ...]) -> None:
    """Label data.unlabeled_dir with the OpenAI-compatible vision LLM (autolabel.llm)."""
    _run("llm", config_path, overrides)


@main.command(name="eval")
@click.option(
    "--pred",
    "pred_dir",
    required=True,
    type=click.Path(path_type=Path, file_okay=False),
    help="Predicted YOLO labels (a labeled dir or a folder of .txt).",
)
@click.option(
    "--truth",
    "truth_dir",
    required=True,
    type=click.Path(path_type=Path, file_okay=False),
    help="Ground-truth YOLO labels.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
def eval_cmd(pred_dir: Path, truth_dir: Path, as_json: bool) -> None:
    """Precision, recall and mAP50 (IoU 0.5) per class and overall."""
    from vision_core.errors import VisionError
    from vision_label.evaluate import evaluate_dirs

    try:
        res = evaluate_dirs(pred_dir, truth_dir)
    except VisionError as exc:
        echo(f"Error: {exc}", err=True)
        sys.exit(2)
    for warning in res.warnings:
        click.echo(f"Warning: {warning}", err=True)
    if as_json:
        echo_json(res.as_dict())
        return
    echo(f"{'class':<16}{'P':>8}{'R':>8}{'mAP50':>8}{'inst':>7}{'pred':>7}")
    for name, row in res.per_class.items():
        echo(
            f"{name:<16}{row['precision']:>8.3f}{row['recall']:>8.3f}{row['ap50']:>8.3f}"
            f"{int(row['instances']):>7}{int(row['predictions']):>7}"
        )
    echo(
        f"{'all':<16}{res.precision:>8.3f}{res.recall:>8.3f}{res.map50:>8.3f}"
        f"{res.instances:>7}{res.predictions:>7}"
    )


main.add_command(keys_command)
