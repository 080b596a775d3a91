"""What a YOLO detection graph looks like: read once from a runner's inputs, outputs, metadata.

`read_yolo_layout` checks that the graph is an ultralytics detection export (one (B, 3, H, W)
float input; one (B, 4 + nc, N) output, or (B, N, 6) for an end-to-end export) and gathers
what pre- and post-processing need: names, sizes, stride, the letterbox size of a dynamic
model, the class count. A graph it cannot read raises ModelLoadError naming the file and
its inputs/outputs.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from typing import Any

import numpy as np

from vision_core.errors import ModelLoadError
from vision_core.infer.base import parse_names, static_dim
from vision_core.infer.runner import Runner, describe_io

__all__ = ["DEFAULT_IMGSZ", "YoloLayout", "read_yolo_layout"]

DEFAULT_IMGSZ = 640
_DTYPES: dict[str, type[np.floating[Any]]] = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
}


def _literal(raw: str | None) -> Any:
    if raw is None:
        return None
    try:
        return ast.literal_eval(raw)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None


@dataclass(frozen=True, slots=True)
class YoloLayout:
    """The input/output layout of a YOLO detection graph and its metadata."""

    input_name: str
    output_name: str
    input_dtype: type[np.floating[Any]]  # what the graph takes: float32 or float16
    batch: int | None  # fixed batch size; None: dynamic batch
    input_size: tuple[int, int] | None  # (h, w) of a fixed-size graph; None: dynamic
    stride: int  # the letterbox of a dynamic graph aligns to it
    imgsz: int  # long side of a dynamic graph's letterbox
    end2end: bool  # output (B, N, 6) with NMS done in the graph
    nc: int | None  # classes; None when neither the shape nor the metadata says
    names: dict[int, str]  # class names from the metadata ({} when none)

    @property
    def dynamic(self) -> bool:
        return self.input_size is None

    @property
    def output_channels(self) -> int | None:
        """Size of the output's channel axis: 6 end-to-end, 4 + nc otherwise."""
        return 6 if self.end2end else (None if self.nc is None else 4 + self.nc)


def read_yolo_layout(runner: Runner, imgsz: int | None = None) -> YoloLayout:
    """The layout of a YOLO detection graph; ModelLoadError when it is not one.

    imgsz: the dynamic model's letterbox long side (default: the `imgsz` metadata, else 640).
    """
    path, meta = runner.model_path, runner.metadata
    task = meta.get("task")
    if task is not None and task != "detect":
        raise ModelLoadError(f"{path}: task {task!r} is not supported (detect only)")
    inputs, outputs = runner.inputs, runner.outputs
    if len(inputs) != 1 or len(outputs) != 1:
        raise ModelLoadError(
            f"{path}: not a YOLO detection layout (want 1 input, 1 output): {describe_io(runner)}"
        )
    inp, out = inputs[0], outputs[0]
    if len(inp.shape) != 4 or static_dim(inp.shape[1]) not in (3, None):
        raise ModelLoadError(f"{path}: input must be (B, 3, H, W): {describe_io(runner)}")
    if inp.type not in _DTYPES:
        raise ModelLoadError(f"{path}: input type {inp.type} is not float/float16")
    h, w = static_dim(inp.shape[2]), static_dim(inp.shape[3])
    stride = _literal(meta.get("stride"))
    meta_imgsz = _literal(meta.get("imgsz"))
    if isinstance(meta_imgsz, int):
        meta_imgsz = [meta_imgsz]
    if imgsz is None and isinstance(meta_imgsz, (list, tuple)) and meta_imgsz:
        imgsz = int(max(meta_imgsz))
    args = _literal(meta.get("args"))
    end2end = _literal(meta.get("end2end")) is True or (
        isinstance(args, dict) and bool(args.get("nms"))
    )
    if len(out.shape) != 3:
        raise ModelLoadError(
            f"{path}: output must be 3-D (B, 4 + nc, N) or end-to-end (B, N, 6): "
            f"{describe_io(runner)}"
        )
    names = parse_names(meta.get("names"))
    channels = static_dim(out.shape[2] if end2end else out.shape[1])
    nc: int | None
    if end2end:
        if channels not in (6, None):
            raise ModelLoadError(
                f"{path}: end-to-end output must be (B, N, 6): {describe_io(runner)}"
            )
        nc = len(names) or None
    else:
        nc = None if channels is None else channels - 4
        if nc is not None and (nc < 1 or (names and len(names) != nc)):
            raise ModelLoadError(
                f"{path}: output has {channels} channels, not 4 + nc with "
                f"nc = {len(names) or '>= 1'} classes: {describe_io(runner)}"
            )
    return YoloLayout(
        input_name=inp.name,
        output_name=out.name,
        input_dtype=_DTYPES[inp.type],
        batch=static_dim(inp.shape[0]),
        input_size=None if h is None or w is None else (h, w),
        stride=int(stride) if isinstance(stride, int) and stride > 0 else 32,
        imgsz=imgsz or DEFAULT_IMGSZ,
        end2end=end2end,
        nc=nc,
        names=names,
    )
