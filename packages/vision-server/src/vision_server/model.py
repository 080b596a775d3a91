"""The served model: a detector from vision-core's factory, its runners, what /health shows.

The model is opened by `vision_core.infer.detector_from_config` (one session factory for the
edge, the server, vision-label and evaluation; `infer.runtime`/`infer.precision` and their
`auto` tuning included), so the server's detections are exactly those of local inference.
The server adds how many runs it makes at once:

- Runners: `deploy.remote.runners` batches run at once, each on its own thread, through
  one shared model (ONNX Runtime allows concurrent `run` calls; OpenVINO is compiled in
  throughput mode with one CPU stream per runner, each run taking its own infer request).
  On CPU each run then gets `cores / runners` threads (`infer.threads` overrides).
  Measured on 2 cores (yolo11n 320, batch 8, ONNX Runtime): two single-threaded runs at
  once do 34 frames/s, one run with 2 threads 26, and only 19 when a decode thread
  competes with it: intra-op threads wait for each other at every operator, so one
  preempted thread stalls the run, while independent runs just share the cores. On CUDA
  two runners overlap one batch's CPU pre/post-processing with the other's GPU work. With
  several runners OpenCV's own thread pool (letterbox resize, colour conversion) is set to
  one thread per call: two runners each fanning out over every core halved the
  throughput (31 vs 58 frames/s, same CPU time: waiting).
- Spinning off (vision-core's session default): intra-op threads spin-wait after each
  operator by default, burning the CPU that decoding and HTTP need (measured: 19 frames/s
  with spinning vs 26 without).

Batching: a model whose input batch dimension is symbolic (an ultralytics export with
`dynamic=True`, or a fixed-size graph whose dim 0 is symbolic) takes up to `max_batch`
frames in ONE model run; a model with a fixed batch of 1 gets the same grouped frames
one by one (the adapter's `predict_batch` loops), still in the inference thread.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from vision_core.errors import ModelLoadError, VisionError
from vision_core.logging import StructuredLogger
from vision_server.errors import ServerConfigError

if TYPE_CHECKING:
    from vision_core.infer import Detector
    from vision_server.settings import ServerSettings

__all__ = ["LoadedModel", "load_model", "model_batching"]


@dataclass(frozen=True, slots=True)
class LoadedModel:
    detector: Detector
    path: str
    sha256: str
    provider: str  # the execution provider (or OpenVINO device) really used
    batch_dim: int | None  # None: dynamic batch (one session.run per group of frames)
    runners: int = 1  # batches in flight at once
    intra_threads: int = 0  # threads per run (0: the runtime's default)
    runtime: str = "onnxruntime"  # what runs the graph
    precision: str = "fp32"

    @property
    def name(self) -> str:
        """`model.onnx@<sha256[:12]>`: what StatsEvents record as their model."""
        return f"{Path(self.path).name}@{self.sha256[:12]}"

    @property
    def batching(self) -> str:
        return model_batching(self.batch_dim)


def model_batching(batch_dim: int | None) -> str:
    if batch_dim is None:
        return "dynamic"  # up to max_batch frames per model run
    return f"fixed-{batch_dim}"


def plan_runners(settings: ServerSettings, cores: int | None = None) -> tuple[int, int]:
    """(runners, intra-op threads per run) from deploy.remote.runners and infer.threads."""
    cores = cores or os.cpu_count() or 1
    cuda = settings.infer.provider == "cuda"
    runners = settings.remote.runners or (2 if cuda else min(4, cores))
    threads = settings.infer.threads or (0 if cuda else max(1, cores // runners))
    return runners, threads


def load_model(settings: ServerSettings, logger: StructuredLogger | None = None) -> LoadedModel:
    """Open `infer.model_path` with the configured thresholds and runtime; ServerConfigError
    if unusable (a missing runtime extra names the extra to install)."""
    from vision_core.config import PipelineConfig
    from vision_core.config.schema import RunSection
    from vision_core.infer import detector_from_config
    from vision_core.infer.base import static_dim
    from vision_core.infer.runtimes import file_sha256

    settings.check_model()
    path = settings.model_path.resolve()
    runners, threads = plan_runners(settings)
    cfg = PipelineConfig(
        run=RunSection(workdir=str(settings.workdir)),
        infer=settings.infer,
        class_map=dict(settings.class_map),
    )
    try:
        detector = detector_from_config(
            cfg,
            str(path),
            threads=threads,
            streams=runners,
            logger=logger,
            gpu_hint="vision-server[gpu] in place of the CPU wheel, see the README",
        )
    except ModelLoadError as exc:
        raise ServerConfigError(f"infer.model_path: {exc}") from exc
    except VisionError as exc:  # the runtime or precision asked for is not available
        raise ServerConfigError(str(exc)) from exc
    runner = detector.runner  # type: ignore[attr-defined]
    shape = list(runner.inputs[0].shape) if runner.inputs else []
    # a (B, C, H, W) input batches on dim 0; Faster R-CNN's (C, H, W) takes one image
    batch_dim = static_dim(shape[0]) if len(shape) == 4 else 1
    model_file = Path(runner.model_path)
    return LoadedModel(
        detector=detector,
        path=str(model_file),
        sha256=file_sha256(model_file),
        provider=str(runner.device),
        batch_dim=batch_dim,
        runners=runners,
        intra_threads=threads,
        runtime=str(runner.runtime),
        precision=str(runner.precision),
    )
