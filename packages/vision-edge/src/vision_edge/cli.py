"""vision-edge: parse, load the config, call the kernel. No logic here."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from vision_core.cli import config_options, load_cli_config, version_option
from vision_core.kernel import RunResult


def _summary(result: RunResult) -> None:
    """A short human summary (the full figures are in the run dir's metrics.json)."""
    m = result.run_context.metrics
    lines = [f"{result.status}: edge ({result.backend}) in {result.elapsed_ms / 1000:.1f}s"]
    if result.error:
        lines.append(f"  error: {result.error}")
    if "frames" in m:
        lat = m.get("latency_ms", {})
        lines.append(
            f"  frames {m['frames']} at {m.get('fps', 0.0):.1f} fps, latency p50 "
            f"{lat.get('p50', 0.0):.1f} ms p95 {lat.get('p95', 0.0):.1f} ms"
        )
        per_class = ", ".join(f"{k} {v}" for k, v in m.get("detections_per_class", {}).items())
        lines.append(f"  detections {m.get('detections_total', 0)}: {per_class or 'none'}")
        if m.get("dropped"):
            lines.append("  dropped: " + ", ".join(f"{k} {v}" for k, v in m["dropped"].items()))
        if m.get("stream_fallbacks"):
            falls = ", ".join(f"{k} {v}" for k, v in m["stream_fallbacks"].items())
            lines.append(f"  ran locally after stream failures: {falls}")
        lines.append(
            f"  stats events committed {m.get('events_committed', 0)}, "
            f"pending {m.get('events_pending', 0)}"
        )
    lines.append(f"  run dir: {result.run_context.run_dir}")
    click.echo("\n".join(lines))


@click.group()
@version_option("vision-edge")
def main() -> None:
    """Run a detector on a device: camera, video or images to stats."""


@main.command()
@config_options
def run(config_path: Path | None, overrides: tuple[str, ...]) -> None:
    """Run deploy.edge.mode (local, stream or llm) on deploy.edge.source until it ends,
    max_frames, or Ctrl-C / SIGTERM (which finish the frame and flush the stats)."""
    from vision_core.kernel import VisionKernel

    cfg = load_cli_config(config_path, overrides, record_as=("deploy-edge", "edge"))
    result = VisionKernel(cfg).run_deploy_edge()
    _summary(result)
    sys.exit(result.exit_code)


@main.command()
@config_options
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
def status(config_path: Path | None, overrides: tuple[str, ...], as_json: bool) -> None:
    """The stats outbox of this device: pending events, oldest age, drops, last error."""
    from vision_edge.status import outbox_status

    cfg = load_cli_config(config_path, overrides)
    info = outbox_status(cfg)
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    if not info["exists"]:
        click.echo(f"no outbox yet at {info['path']} (no run of this device in this workdir)")
        return
    age = info["oldest_age_sec"]
    click.echo(
        f"outbox {info['path']}\n"
        f"  pending events  {info['pending']}\n"
        f"  oldest pending  {'-' if age is None else f'{age:.1f} s ago'}\n"
        f"  dropped (cap)   {info['dropped_total']}\n"
        f"  last error      {info['last_error'] or '-'}\n"
        f"  endpoint        {info['endpoint'] or '(none: kept locally)'}"
    )


@main.command()
@config_options
@click.option("--cached", is_flag=True, help="Show the cached choice if there is one.")
def tune(config_path: Path | None, overrides: tuple[str, ...], cached: bool) -> None:
    """Time each installed runtime x precision on infer.model_path, check it against FP32,
    print the table and cache the fastest that passes (what infer.runtime = auto runs)."""
    from vision_core.errors import VisionError
    from vision_edge.tune import format_report, run_tune

    cfg = load_cli_config(config_path, overrides)
    try:
        result, model = run_tune(cfg, force=not cached)
    except VisionError as exc:
        raise click.ClickException(str(exc)) from exc
    cache = cfg.infer.tune_cache or str(Path(cfg.run.workdir) / "tune-cache.json")
    click.echo(format_report(result, model, cache))
