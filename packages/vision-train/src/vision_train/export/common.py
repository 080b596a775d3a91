"""Shared export steps: metadata, the ONNX checker, ORT-vs-PyTorch agreement, tensors."""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from vision_core.infer.letterbox import letterbox
from vision_core.media import read_image
from vision_train.errors import ExportError


def yolo_tensor(path: Path, imgsz: int) -> np.ndarray:
    """The YOLO runtime's preprocessing: letterbox to imgsz, RGB, 0..1, NCHW float32."""
    img = letterbox(read_image(path), (imgsz, imgsz)).image
    rgb = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    return np.ascontiguousarray(rgb.transpose(2, 0, 1)[None], dtype=np.float32) / 255.0


def place_file(src: Path, dst: Path) -> Path:
    """Put `src` at `dst` atomically, from any filesystem (temp dirs may live elsewhere)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.tmp")
    try:
        shutil.copyfile(src, tmp)
        tmp.replace(dst)
    finally:
        tmp.unlink(missing_ok=True)
    return dst


_QUANTIZED_OPS = {
    "QuantizeLinear",
    "DequantizeLinear",
    "ConvInteger",
    "MatMulInteger",
    "QLinearConv",
}


def model_facts(model_path: Path) -> tuple[dict[str, str], str]:
    """(metadata_props, precision) of an ONNX file. precision is "int8" or "fp32": the
    `precision` metadata vision-train writes, else read from the graph (a quantized graph
    has QuantizeLinear/DequantizeLinear or integer kernels)."""
    import onnx

    model = onnx.load(str(model_path), load_external_data=False)
    props = {p.key: p.value for p in model.metadata_props}
    precision = props.get("precision", "")
    if precision not in {"fp32", "int8"}:
        ops = {n.op_type for n in model.graph.node}
        precision = "int8" if ops & _QUANTIZED_OPS else "fp32"
    return props, precision


def write_metadata(model_path: Path, extra: dict[str, object]) -> None:
    """Add (or replace) metadata_props so the runtime needs no side files."""
    import onnx

    model = onnx.load(str(model_path))
    props = {p.key: p.value for p in model.metadata_props}
    for key, value in extra.items():
        props[key] = value if isinstance(value, str) else json.dumps(value)
    del model.metadata_props[:]
    for key, value in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    tmp = model_path.with_suffix(".tmp.onnx")
    onnx.save(model, str(tmp))
    tmp.replace(model_path)


def check_onnx(model_path: Path) -> None:
    import onnx

    try:
        onnx.checker.check_model(str(model_path), full_check=True)
    except Exception as exc:  # onnx raises several error types
        raise ExportError(f"{model_path}: onnx.checker rejected the export: {exc}") from exc


def compare_outputs(
    name: str,
    ort_outputs: Sequence[np.ndarray],
    torch_outputs: Sequence[np.ndarray],
    *,
    atol: float,
    rtol: float,
) -> float:
    """Max abs difference; ExportError when any element is beyond atol + rtol*|ref|."""
    worst = 0.0
    for i, (a, b) in enumerate(zip(ort_outputs, torch_outputs, strict=True)):
        if a.shape != b.shape:
            raise ExportError(f"{name}: ONNX output {i} has shape {a.shape}, PyTorch {b.shape}")
        if a.size == 0:
            continue
        diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
        worst = max(worst, float(diff.max()))
        bad = diff > atol + rtol * np.abs(b)
        if bad.any():
            raise ExportError(
                f"{name}: ONNX Runtime and PyTorch outputs differ (output {i}: max |diff| {diff.max():.4g} "
                f"at {int(bad.sum())} elements, tolerance {atol} + {rtol}*|ref|)"
            )
    return worst
