"""YOLO (.pt) -> ONNX through ultralytics' exporter, then our checks and metadata."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from vision_train.errors import ExportError
from vision_train.export.common import (
    check_onnx,
    compare_outputs,
    place_file,
    write_metadata,
    yolo_tensor,
)
from vision_train.ultralytics_env import offline_ultralytics


def export_yolo(
    checkpoint: Path,
    out_path: Path,
    *,
    imgsz: int,
    opset: int,
    dynamic: bool,
    sample_images: Sequence[Path],
) -> dict[str, object]:
    """Export, check with onnx.checker, compare ORT with PyTorch on sample images.

    ultralytics writes its export beside the checkpoint: pass a copy in a temporary dir
    (the pipeline does), never the user's file.
    """
    offline_ultralytics()
    from ultralytics import YOLO

    model = YOLO(str(checkpoint), task="detect")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter(
                "default"
            )  # a caller's warnings-as-errors must not break the exporter
            exported = model.export(
                format="onnx",
                imgsz=imgsz,
                opset=opset,
                dynamic=dynamic,
                simplify=True,
                device="cpu",
                batch=1,
                verbose=False,
            )
    except Exception as exc:
        raise ExportError(f"ultralytics ONNX export of {checkpoint} failed: {exc}") from exc
    place_file(Path(exported), out_path)
    names = dict(model.names)
    stride = int(max(model.model.stride)) if hasattr(model.model, "stride") else 32
    write_metadata(
        out_path,
        {"arch": "yolo", "exported_by": "vision-train", "opset": str(opset), "precision": "fp32"},
    )
    check_onnx(out_path)
    max_diff = _agreement(model, out_path, imgsz, sample_images)
    return {
        "names": names,
        "imgsz": imgsz,
        "stride": stride,
        "dynamic": dynamic,
        "ort_torch_max_abs_diff": max_diff,
    }


def _agreement(model: object, onnx_path: Path, imgsz: int, sample_images: Sequence[Path]) -> float:
    import onnxruntime as ort
    import torch

    net = model.model.float().eval()  # type: ignore[attr-defined]
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0].name
    worst = 0.0
    for path in list(sample_images)[:3]:
        x = yolo_tensor(path, imgsz)
        with torch.no_grad():
            ref = net(torch.from_numpy(x))
        ref_arr = (ref[0] if isinstance(ref, (list, tuple)) else ref).numpy()
        got = sess.run(None, {inp: x})[0]
        # boxes are in input pixels, scores in 0..1: one absolute floor plus a relative part
        boxes = compare_outputs(
            f"{onnx_path.name} boxes", [got[:, :4]], [ref_arr[:, :4]], atol=0.05, rtol=1e-3
        )
        scores = compare_outputs(
            f"{onnx_path.name} scores", [got[:, 4:]], [ref_arr[:, 4:]], atol=2e-3, rtol=0
        )
        worst = max(worst, boxes, scores)
    if not np.isfinite(worst):
        raise ExportError(f"{onnx_path}: non-finite outputs")
    return worst
