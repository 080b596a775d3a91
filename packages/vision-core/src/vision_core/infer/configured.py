"""`detector_from_config`: the detector of `infer.*`, what every command runs.

It reads `infer.*` and resolves `auto` (runtime or precision) through
`vision_core.infer.tune`, which measures the candidates once per model and device and
caches the choice, then opens the model with `vision_core.infer.factory.load_detector`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vision_core.infer.base import Detector
from vision_core.infer.factory import latest_model, load_detector

if TYPE_CHECKING:
    from vision_core.config import PipelineConfig
    from vision_core.logging import StructuredLogger

__all__ = ["detector_from_config"]


def detector_from_config(
    cfg: PipelineConfig,
    model_path: str | None = None,
    *,
    threads: int | None = None,
    streams: int = 1,
    logger: StructuredLogger | None = None,
    gpu_hint: str = "onnxruntime-gpu",
) -> Detector:
    """The detector of `cfg.infer`: its model on its runtime and precision.

    model_path and threads override `infer.*`. streams: runs the caller makes at
    once (the server's runners). `infer.runtime`/`infer.precision` = auto are resolved by
    `vision_core.infer.tune` (measured once per model and device, then read from the cache).
    """
    inf = cfg.infer
    path = model_path or inf.model_path or str(latest_model(cfg.run.workdir))
    n_threads = inf.threads if threads is None else threads
    runtime: str = inf.runtime
    precision: str = inf.precision
    if "auto" in (runtime, precision):
        from vision_core.infer.tune import tune_from_config

        choice = tune_from_config(cfg, path, threads=n_threads, streams=streams, logger=logger)
        runtime, precision = choice.runtime, choice.precision
    return load_detector(
        path,
        conf=inf.conf,
        iou=inf.iou,
        max_det=inf.max_det,
        agnostic=inf.agnostic_nms,
        class_map=dict(cfg.class_map) or None,
        provider=inf.provider,
        threads=n_threads,
        runtime=runtime,
        precision=precision,
        streams=streams,
        logger=logger,
        gpu_hint=gpu_hint,
    )
