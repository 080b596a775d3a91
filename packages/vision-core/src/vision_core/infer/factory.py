"""Pick the detector adapter an ONNX model needs, from its metadata or its output layout."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import onnxruntime as ort

from vision_core.errors import ModelLoadError
from vision_core.infer.base import Detector, describe_io
from vision_core.infer.faster_rcnn import FasterRCNNDetector
from vision_core.infer.session import create_session, read_metadata, session_model_path
from vision_core.infer.yolo import YoloDetector

if TYPE_CHECKING:
    from vision_core.config import PipelineConfig

__all__ = ["detect_arch", "detector_from_config", "load_detector"]

Arch = Literal["yolo", "faster_rcnn"]

_YOLO_ARCHS = {"yolo", "yolov8", "yolo11", "yolo26", "ultralytics"}
_FRCNN_ARCHS = {"faster_rcnn", "fasterrcnn", "faster-rcnn"}


def detect_arch(session: ort.InferenceSession) -> Arch:
    """ "yolo" or "faster_rcnn": metadata `arch` first, then `task`, then the output layout."""
    meta = read_metadata(session)
    arch = meta.get("arch", "").strip().lower()
    if arch in _FRCNN_ARCHS:
        return "faster_rcnn"
    if arch in _YOLO_ARCHS:
        return "yolo"
    if arch:
        raise ModelLoadError(
            f"{session_model_path(session)}: unknown model arch {arch!r} in metadata "
            f"(known: yolo, faster_rcnn)"
        )
    if meta.get("task") == "detect":
        return "yolo"
    outputs = session.get_outputs()
    names = {o.name for o in outputs}
    if len(outputs) == 3 and (
        {"boxes", "labels", "scores"} <= names or any("int" in o.type for o in outputs)
    ):
        return "faster_rcnn"
    if len(outputs) == 1 and len(outputs[0].shape) == 3:
        return "yolo"
    raise ModelLoadError(
        f"{session_model_path(session)}: cannot tell the model type from its metadata or "
        f"outputs (want one 3-D YOLO output or boxes/labels/scores): {describe_io(session)}"
    )


def load_detector(
    path: str | os.PathLike[str] | ort.InferenceSession,
    *,
    conf: float = 0.25,
    iou: float = 0.7,
    max_det: int = 300,
    agnostic: bool = False,
    class_map: Mapping[int, str] | None = None,
    provider: str = "cpu",
    threads: int = 0,
) -> Detector:
    """Open an ONNX detection model (YOLO or Faster R-CNN) with the right adapter.

    `iou` and `agnostic` apply to YOLO only (Faster R-CNN runs its NMS inside the graph).
    """
    if isinstance(path, ort.InferenceSession):
        session = path
    else:
        session = create_session(path, provider=provider, threads=threads)
    if detect_arch(session) == "faster_rcnn":
        return FasterRCNNDetector(session, conf=conf, class_map=class_map, max_det=max_det)
    return YoloDetector(
        session, conf=conf, iou=iou, max_det=max_det, agnostic=agnostic, class_map=class_map
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


def detector_from_config(
    cfg: PipelineConfig, model_path: str | None = None, *, threads: int | None = None
) -> Detector:
    """The detector of `cfg.infer` (model_path overrides `infer.model_path`, threads
    `infer.threads`)."""
    inf = cfg.infer
    path = model_path or inf.model_path or str(latest_model(cfg.run.workdir))
    return load_detector(
        path,
        conf=inf.conf,
        iou=inf.iou,
        max_det=inf.max_det,
        agnostic=inf.agnostic_nms,
        class_map=dict(cfg.class_map) or None,
        provider=inf.provider,
        threads=inf.threads if threads is None else threads,
    )
