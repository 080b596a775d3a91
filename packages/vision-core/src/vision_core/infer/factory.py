"""The one way to a detector: open the model on its runtime, pick the adapter it needs.

`load_detector` takes an explicit runtime and precision (`vision_core.infer.configured`'s
`detector_from_config` reads them from `infer.*`, resolving `auto` first).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from vision_core.errors import ModelLoadError
from vision_core.infer.base import Detector
from vision_core.infer.faster_rcnn import FasterRCNNDetector
from vision_core.infer.runner import Runner, as_runner, describe_io
from vision_core.infer.yolo import YoloDetector

if TYPE_CHECKING:
    import onnxruntime as ort

    from vision_core.logging import StructuredLogger

__all__ = ["detect_arch", "latest_model", "load_detector"]

Arch = Literal["yolo", "faster_rcnn"]

_YOLO_ARCHS = {"yolo", "yolov8", "yolo11", "yolo26", "ultralytics"}
_FRCNN_ARCHS = {"faster_rcnn", "fasterrcnn", "faster-rcnn"}


def _runner(model: Runner | ort.InferenceSession) -> Runner:
    runner = as_runner(model)
    if runner is None:
        raise TypeError(f"expected a Runner or an onnxruntime session, got {type(model).__name__}")
    return runner


def detect_arch(model: Runner | ort.InferenceSession) -> Arch:
    """ "yolo" or "faster_rcnn": metadata `arch` first, then `task`, then the output layout."""
    runner = _runner(model)
    meta = runner.metadata
    arch = meta.get("arch", "").strip().lower()
    if arch in _FRCNN_ARCHS:
        return "faster_rcnn"
    if arch in _YOLO_ARCHS:
        return "yolo"
    if arch:
        raise ModelLoadError(
            f"{runner.model_path}: unknown model arch {arch!r} in metadata "
            f"(known: yolo, faster_rcnn)"
        )
    if meta.get("task") == "detect":
        return "yolo"
    outputs = runner.outputs
    names = {o.name for o in outputs}
    if len(outputs) == 3 and (
        {"boxes", "labels", "scores"} <= names or any("int" in o.type for o in outputs)
    ):
        return "faster_rcnn"
    if len(outputs) == 1 and len(outputs[0].shape) == 3:
        return "yolo"
    raise ModelLoadError(
        f"{runner.model_path}: cannot tell the model type from its metadata or "
        f"outputs (want one 3-D YOLO output or boxes/labels/scores): {describe_io(runner)}"
    )


def load_detector(
    path: str | os.PathLike[str] | Runner | ort.InferenceSession,
    *,
    conf: float = 0.25,
    iou: float = 0.7,
    max_det: int = 300,
    agnostic: bool = False,
    class_map: Mapping[int, str] | None = None,
    provider: str = "cpu",
    threads: int = 0,
    runtime: str | None = None,
    precision: str = "fp32",
    streams: int = 1,
    logger: StructuredLogger | None = None,
    gpu_hint: str = "onnxruntime-gpu",
) -> Detector:
    """Open a detection model (YOLO or Faster R-CNN) on `runtime` with the right adapter.

    runtime None: the file's own (OpenVINO for an IR .xml, else ONNX Runtime). `path` may
    also be an open `Runner` or ONNX Runtime session (then runtime, precision,
    provider, threads and streams are its own). `iou` and `agnostic` apply to YOLO only
    (Faster R-CNN runs its NMS inside the graph). `streams`: runs expected at once (the
    server's runners; OpenVINO compiles a CPU stream for each). See `open_runner` for the
    errors.
    """
    from vision_core.infer.runtimes import open_runner

    runner = open_runner(
        path,
        runtime=runtime,
        precision=precision,
        provider=provider,
        threads=threads,
        streams=streams,
        logger=logger,
        gpu_hint=gpu_hint,
    )
    if detect_arch(runner) == "faster_rcnn":
        return FasterRCNNDetector(runner, conf=conf, class_map=class_map, max_det=max_det)
    return YoloDetector(
        runner, conf=conf, iou=iou, max_det=max_det, agnostic=agnostic, class_map=class_map
    )


def latest_model(workdir: str | Path, name: str = "model.onnx") -> Path:
    """The newest `<workdir>/runs/*/<name>` (what `infer.model_path = ""` means).

    ModelLoadError when there is none, naming the key and where it looked.
    """
    runs = Path(workdir) / "runs"
    found = sorted(runs.glob(f"*/{name}"), key=lambda p: p.stat().st_mtime) if runs.is_dir() else []
    if not found:
        raise ModelLoadError(
            f"no model to load: infer.model_path is empty and no training run under {runs} "
            f"holds a {name} (set infer.model_path, or run vision-train first)"
        )
    return found[-1]
