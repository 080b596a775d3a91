"""vision-edge: parse, load the config, call the kernel. No logic here."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from vision_core.cli import (
    config_options,
    detections_line,
    echo,
    echo_json,
    echo_summary,
    fail,
    keys_command,
    load_cli_config,
    summary_head,
    version_option,
)
from vision_core.config import PipelineConfig
from vision_core.kernel import RunResult
from vision_core.stats.deadletters import dead_letters_command


def _summary(result: RunResult) -> None:
    """A short human summary (the full figures are in the run dir's metrics.json)."""
    m = result.run_context.metrics
    lines = summary_head(result, "edge")
    if "frames" in m:
        lat = m.get("latency_ms", {})
        lines.append(
            f"  frames {m['frames']} at {m.get('fps', 0.0):.1f} fps, latency p50 "
            f"{lat.get('p50', 0.0):.1f} ms p95 {lat.get('p95', 0.0):.1f} ms"
        )
        lines.append(detections_line(m))
        if m.get("dropped"):
            lines.append("  dropped: " + ", ".join(f"{k} {v}" for k, v in m["dropped"].items()))
        if m.get("stream_fallbacks"):
            falls = ", ".join(f"{k} {v}" for k, v in m["stream_fallbacks"].items())
            lines.append(f"  ran locally after stream failures: {falls}")
        lines += _tracking_lines(m.get("tracking") or {})
        lines.append(
            f"  stats events committed {m.get('events_committed', 0)}, "
            f"pending {m.get('events_pending', 0)}"
        )
    echo_summary(result, lines)


def _tracking_lines(tracking: dict[str, Any]) -> list[str]:
    """Crossings per line, class and direction; zone occupancy at the end; tracks."""
    if "line_counts" not in tracking:
        return []
    lines = [f"  tracks {tracking.get('tracks_started', 0)}"]
    for line, by_cls in tracking["line_counts"].items():
        counts = ", ".join(
            f"{cls} in {d.get('in', 0)} out {d.get('out', 0)}" for cls, d in by_cls.items()
        )
        lines.append(f"  line {line}: {counts}")
    for zone, n in tracking.get("occupancy", {}).items():
        lines.append(f"  zone {zone}: {n} inside at the end")
    return lines


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
        echo_json(info)
        return
    if not info["exists"]:
        echo(f"no outbox yet at {info['path']} (no run of this device in this workdir)")
        return
    age = info["oldest_age_sec"]
    dead = info["dead_letters"]
    echo(
        f"outbox {info['path']}\n"
        f"  pending events  {info['pending']}\n"
        f"  oldest pending  {'-' if age is None else f'{age:.1f} s ago'}\n"
        f"  dropped (cap)   {info['dropped_total']}\n"
        f"  dead letters    {dead}"
        + ("  (refused by the service: `vision-edge dead-letters`)" if dead else "")
        + f"\n  last error      {info['last_error'] or '-'}\n"
        f"  endpoint        {info['endpoint'] or '(none: kept locally)'}"
    )


@main.command("score-tracking")
@click.argument("run_dir", type=click.Path(path_type=Path, file_okay=False, exists=True))
@click.option(
    "--truth",
    required=True,
    type=click.Path(path_type=Path, exists=True),
    help="MOT ground truth: a gt.txt, or a scene folder (gt.txt + scene.json true counts).",
)
@click.option("--iou", default=0.5, type=click.FloatRange(0.0, 1.0), help="Match IoU.")
@click.option("--class-agnostic", is_flag=True, help="Match boxes whatever their class.")
@click.option(
    "--min-visibility", default=0.0, type=click.FloatRange(0.0, 1.0),
    help="Ignore ground-truth boxes less visible than this.",
)  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print the scores as JSON.")
def score_tracking(
    run_dir: Path,
    truth: Path,
    iou: float,
    class_agnostic: bool,
    min_visibility: float,
    as_json: bool,
) -> None:
    """Score a tracked run (track.enabled, deploy.edge.save_tracks) against MOT ground
    truth: IDF1, MOTA, id switches, count error per line and class. Needs
    `pip install "vision-edge[track-eval]"`."""
    from vision_core.errors import VisionError
    from vision_edge.tracking import score_run

    try:
        res = score_run(
            run_dir, truth, iou=iou, class_aware=not class_agnostic, min_visibility=min_visibility
        )
    except (VisionError, OSError, ValueError, KeyError) as exc:
        fail(f"{type(exc).__name__}: {exc}" if isinstance(exc, KeyError) else str(exc))
        return
    if as_json:
        echo_json(res)
        return
    echo(
        f"IDF1 {res['idf1']:.3f}  MOTA {res['mota']:.3f}  id switches {res['id_switches']}  "
        f"precision {res['precision']:.3f}  recall {res['recall']:.3f}  "
        f"tracks {res['predicted_tracks']} (truth {res['gt_tracks']})"
    )
    counts = res.get("counts")
    if counts:
        echo(
            f"crossings counted {counts['counted_total']}, true {counts['true_total']}, "
            f"absolute error {counts['abs_error']}"
        )
        for key, err in counts["errors"].items():
            echo(f"  {key}: {err:+d}")


main.add_command(keys_command)


def _outboxes(cfg: PipelineConfig) -> list[Path]:
    from vision_edge.runtime import outbox_path

    return [outbox_path(cfg)]


main.add_command(dead_letters_command(_outboxes))


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
    echo(format_report(result, model, cache))
