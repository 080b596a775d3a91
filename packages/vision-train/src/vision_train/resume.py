"""`vision-train --resume RUN_DIR`: what an interrupted run left behind.

A training run writes its resolved config (config.json) before the first epoch and one
`train.epoch` line per finished epoch into log.jsonl (line-buffered), so a run stopped by
Ctrl-C or SIGKILL can be continued: the backend finds its last checkpoint in the run dir,
a NEW run dir continues the training to train.epochs (the interrupted one is left as it
was), and its metrics.json lists every epoch, the earlier ones included.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vision_core.config import PipelineConfig, build_config
from vision_core.errors import VisionError
from vision_core.fsutil import atomic_write_json
from vision_train.errors import ResumeError


@dataclass(frozen=True, slots=True)
class Interrupted:
    """A run dir to continue: its config, and what its log says was done."""

    run_dir: Path
    config: PipelineConfig
    epochs: list[dict[str, Any]] = field(default_factory=list)  # finished epochs, in order
    start_eval: dict[str, Any] | None = None  # a fine-tune's epoch 0 (map50, map50_95)

    @property
    def backend(self) -> str:
        return self.config.train.backend


def save_run_config(run_dir: Path, cfg: PipelineConfig) -> None:
    """config.json before training starts (the kernel rewrites the same at the end)."""
    from vision_core.config import config_to_dict

    atomic_write_json(run_dir / "config.json", config_to_dict(cfg))


def load_interrupted(run_dir: Path) -> Interrupted:
    run_dir = run_dir.resolve()
    if not run_dir.is_dir():
        raise ResumeError(f"--resume: run dir not found: {run_dir}")
    cfg_path = run_dir / "config.json"
    if not cfg_path.is_file():
        raise ResumeError(
            f"--resume: {cfg_path} not found: not a vision-train run dir, or the run stopped "
            "before training started (start it again)"
        )
    metrics_path = run_dir / "metrics.json"
    if metrics_path.is_file():
        record = json.loads(metrics_path.read_text(encoding="utf-8"))
        if record.get("mode") not in (None, "train"):
            raise ResumeError(f"--resume: {run_dir} is a {record.get('mode')} run, not training")
        if record.get("status") == "ok":
            raise ResumeError(f"--resume: {run_dir} finished (status ok): nothing to resume")
    try:
        cfg = build_config(json.loads(cfg_path.read_text(encoding="utf-8")), source=str(cfg_path))
    except (VisionError, ValueError) as exc:
        raise ResumeError(f"--resume: {cfg_path} is not a usable config: {exc}") from None
    epochs: dict[int, dict[str, Any]] = {}
    start_eval = None
    log = run_dir / "log.jsonl"
    for rec in _log_records(log):
        if rec.get("event") == "train.epoch" and isinstance(rec.get("epoch"), int):
            epochs[rec["epoch"]] = {k: v for k, v in rec.items() if k not in _LOG_FIELDS}
        elif rec.get("event") == "train.start_eval":
            start_eval = {"map50": rec.get("map50"), "map50_95": rec.get("map50_95")}
    return Interrupted(run_dir, cfg, [epochs[k] for k in sorted(epochs)], start_eval)


_LOG_FIELDS = {"ts_utc", "level", "event", "message", "run_id", "backend"}


def _log_records(path: Path) -> list[dict[str, Any]]:
    """log.jsonl's records; a line cut short by a kill is skipped."""
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict):
            out.append(rec)
    return out
