"""`vision-edge tune`: measure the runtimes and precisions for this device's model, pick one.

The choice `infer.runtime = auto` / `infer.precision = auto` would make at the next start,
measured now, printed as a table, and cached (so that start measures nothing). A config
that names neither `auto` is tuned over both (the command asks for the measurement); one
that names one `auto` keeps the other as given. The threads are those local mode will use
(`deploy.edge.runners` > 1 splits the cores), so the cached choice is the one it reads.
"""

from __future__ import annotations

import dataclasses
import os

from vision_core.config import PipelineConfig
from vision_core.infer.runtimes import cpu_description, runtime_versions
from vision_core.infer.tune import TuneResult, tune_from_config

__all__ = ["edge_threads", "format_report", "run_tune"]


def edge_threads(cfg: PipelineConfig) -> int | None:
    """Threads per model run in local mode (None: infer.threads): cores / runners when
    several runners share the CPU and infer.threads is 0 (as vision_edge.deploy does)."""
    runners = cfg.deploy.edge.runners
    if runners > 1 and not cfg.infer.threads:
        return max(1, (os.cpu_count() or 1) // runners)
    return None


def run_tune(cfg: PipelineConfig, *, force: bool = True) -> tuple[TuneResult, str]:
    """(the result, the model path) of tuning `cfg`'s model on this device.

    force=False reads a cached choice when there is one.
    """
    from vision_core.infer.factory import latest_model

    inf = cfg.infer
    if "auto" not in (inf.runtime, inf.precision):
        cfg = dataclasses.replace(
            cfg, infer=dataclasses.replace(inf, runtime="auto", precision="auto")
        )
    path = inf.model_path or str(latest_model(cfg.run.workdir))
    result = tune_from_config(cfg, path, threads=edge_threads(cfg), force=force)
    return result, path


def format_report(result: TuneResult, model_path: str, cache: str) -> str:
    cpu, flags = cpu_description()
    versions = ", ".join(f"{k} {v}" for k, v in runtime_versions().items())
    source = "cached choice" if result.from_cache else "measured now"
    return "\n".join(
        [
            f"model   {model_path}",
            f"device  {cpu} ({os.cpu_count()} cores; {' '.join(flags) or 'no ISA flags read'})",
            f"runtime {versions}",
            f"choice  infer.runtime = {result.runtime}, infer.precision = {result.precision} "
            f"({source}; cache {cache})",
            "",
            result.format_table(),
            "",
            "fps/p50: end-to-end prediction one frame at a time; agree: share of FP32's "
            "detections matched one-to-one (IoU >= 0.9, same class); * = chosen",
        ]
    )
