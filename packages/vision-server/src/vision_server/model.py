"""The served model: an ONNX Runtime session tuned for a server, its adapter, what /health shows.

The session is opened here rather than by `vision_core.infer.create_session` for two
server-specific options (everything else, the provider choice, the adapter and the pre-
and post-processing, is vision-core's, so the server's detections are exactly those of
local inference):

- Runners: `deploy.remote.runners` batches run at once, each on its own thread, through
  one shared session (ONNX Runtime allows concurrent `run` calls). On CPU each run then
  gets `cores / runners` intra-op threads (`infer.threads` overrides). Measured on 2 cores
  (yolo11n 320, batch 8): two single-threaded runs at once do 34 frames/s, one run with 2
  threads 26, and only 19 when a decode thread competes with it: intra-op threads wait for
  each other at every operator, so one preempted thread stalls the run, while independent
  runs just share the cores. On CUDA two runners overlap one batch's CPU pre/post-processing
  with the other's GPU work. With several runners OpenCV's own thread pool (letterbox
  resize, colour conversion) is set to one thread per call: two runners each fanning out
  over every core halved the throughput (31 vs 58 frames/s, same CPU time: waiting).
- Spinning off: intra-op threads spin-wait after each operator by default, burning the CPU
  that decoding and HTTP need (measured: 19 frames/s with spinning vs 26 without).

Batching: a model whose input batch dimension is symbolic (an ultralytics export with
`dynamic=True`, or a fixed-size graph whose dim 0 is symbolic) takes up to `max_batch`
frames in ONE `session.run`; a model with a fixed batch of 1 gets the same grouped frames
one by one (the adapter's `predict_batch` loops), still in the inference thread.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from vision_core.errors import ModelLoadError
from vision_core.logging import StructuredLogger
from vision_server.errors import ServerConfigError

if TYPE_CHECKING:
    import onnxruntime as ort

    from vision_core.infer import Detector
    from vision_server.settings import ServerSettings

__all__ = ["LoadedModel", "load_model", "model_batching"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LoadedModel:
    detector: Detector
    path: str
    sha256: str
    provider: str  # the execution provider the session really uses
    batch_dim: int | None  # None: dynamic batch (one session.run per group of frames)
    runners: int = 1  # batches in flight at once
    intra_threads: int = 0  # ONNX Runtime intra-op threads per run (0: its default)

    @property
    def name(self) -> str:
        """`model.onnx@<sha256[:12]>`: what StatsEvents record as their model."""
        return f"{Path(self.path).name}@{self.sha256[:12]}"

    @property
    def batching(self) -> str:
        return model_batching(self.batch_dim)


def model_batching(batch_dim: int | None) -> str:
    if batch_dim is None:
        return "dynamic"  # up to max_batch frames per session.run
    return f"fixed-{batch_dim}"


def file_sha256(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _providers(provider: str, logger: StructuredLogger | None) -> list[str]:
    import onnxruntime as ort

    if provider == "cuda":
        if "CUDAExecutionProvider" in ort.get_available_providers():
            return ["CUDAExecutionProvider", "CPUExecutionProvider"]
        message = (
            "infer.provider = 'cuda' but onnxruntime has no CUDAExecutionProvider "
            "(install vision-server[gpu] in place of the CPU wheel, see the README); using CPU"
        )
        if logger is not None:
            logger.warn("server.no_cuda", message)
        else:
            log.warning(message)
    return ["CPUExecutionProvider"]


def open_session(
    path: Path, *, provider: str, threads: int, logger: StructuredLogger | None = None
) -> ort.InferenceSession:
    """An InferenceSession with spinning off; ModelLoadError naming the file on failure."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    if threads > 0:
        opts.intra_op_num_threads = threads
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
    try:
        providers = _providers(provider, logger)
        return ort.InferenceSession(str(path), sess_options=opts, providers=providers)
    except Exception as exc:  # onnxruntime raises its own pybind exception types
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(f"{path} is not a valid ONNX model: {first}") from exc


def plan_runners(settings: ServerSettings, cores: int | None = None) -> tuple[int, int]:
    """(runners, intra-op threads per run) from deploy.remote.runners and infer.threads."""
    cores = cores or os.cpu_count() or 1
    cuda = settings.infer.provider == "cuda"
    runners = settings.remote.runners or (2 if cuda else min(4, cores))
    threads = settings.infer.threads or (0 if cuda else max(1, cores // runners))
    return runners, threads


def load_model(settings: ServerSettings, logger: StructuredLogger | None = None) -> LoadedModel:
    """Open `infer.model_path` with the configured thresholds; ServerConfigError if unusable."""
    from vision_core.infer import load_detector
    from vision_core.infer.base import static_dim

    settings.check_model()
    path = settings.model_path.resolve()
    inf = settings.infer
    runners, threads = plan_runners(settings)
    try:
        session = open_session(path, provider=inf.provider, threads=threads, logger=logger)
        detector = load_detector(
            session,
            conf=inf.conf,
            iou=inf.iou,
            max_det=inf.max_det,
            agnostic=inf.agnostic_nms,
            class_map=dict(settings.class_map) or None,
        )
    except ModelLoadError as exc:
        raise ServerConfigError(f"infer.model_path: {exc}") from exc
    inputs = session.get_inputs()
    shape = list(inputs[0].shape) if inputs else []
    # a (B, C, H, W) input batches on dim 0; Faster R-CNN's (C, H, W) takes one image
    batch_dim = static_dim(shape[0]) if len(shape) == 4 else 1
    return LoadedModel(
        detector=detector,
        path=str(path),
        sha256=file_sha256(path),
        provider=str(session.get_providers()[0]),
        batch_dim=batch_dim,
        runners=runners,
        intra_threads=threads,
    )
