"""Faster R-CNN state dict -> ONNX (TorchScript exporter: the graph has data-dependent
control flow that the dynamo exporter does not take), with dynamic height/width."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from vision_core.media import read_image
from vision_train.errors import ExportError, TrainError
from vision_train.export.common import check_onnx, write_metadata
from vision_train.models.faster_rcnn import (
    DEFAULT_VARIANT,
    checkpoint_names,
    load_checkpoint,
    model_from_checkpoint,
)


def frcnn_tensor(path: Path) -> np.ndarray:
    """The Faster R-CNN runtime's input: RGB, 0..1, CHW float32 (the model resizes itself)."""
    rgb = cv2.cvtColor(read_image(path), cv2.COLOR_BGR2RGB)
    return np.ascontiguousarray(rgb.transpose(2, 0, 1), dtype=np.float32) / 255.0


def export_faster_rcnn(
    checkpoint: Path, out_path: Path, *, opset: int, sample_images: Sequence[Path]
) -> dict[str, object]:
    import torch

    ckpt = load_checkpoint(checkpoint)
    try:
        model = model_from_checkpoint(ckpt, where=checkpoint)
    except TrainError as exc:
        raise ExportError(str(exc)) from None
    names = checkpoint_names(ckpt)
    imgsz = int(model.transform.min_size[0])
    variant = str(ckpt.get("variant", DEFAULT_VARIANT))
    example = torch.rand(3, imgsz, imgsz)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_suffix(".tmp.onnx")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer warnings about data-dependent shapes
            torch.onnx.export(
                model,
                ([example],),
                str(tmp),
                opset_version=opset,
                input_names=["images"],
                output_names=["boxes", "labels", "scores"],
                dynamic_axes={
                    "images": {1: "height", 2: "width"},
                    "boxes": {0: "n"},
                    "labels": {0: "n"},
                    "scores": {0: "n"},
                },
                dynamo=False,
            )
    except Exception as exc:
        tmp.unlink(missing_ok=True)
        raise ExportError(f"Faster R-CNN ONNX export (opset {opset}) failed: {exc}") from exc
    tmp.replace(out_path)
    write_metadata(
        out_path,
        {
            "arch": "faster_rcnn",
            "task": "detect",
            "names": repr(names),
            "imgsz": [imgsz, imgsz],
            # the runtime resizes on the host with these (the graph's own float32 resize
            # comes out a pixel short on some sizes)
            "min_size": str(model.transform.min_size[0]),
            "max_size": str(model.transform.max_size),
            "variant": variant,
            "exported_by": "vision-train",
            "precision": "fp32",
        },
    )
    check_onnx(out_path)
    diff = _agreement(model, out_path, sample_images)
    return {"names": names, "imgsz": imgsz, "variant": variant, "ort_torch_max_abs_diff": diff}


def _agreement(model: object, onnx_path: Path, sample_images: Sequence[Path]) -> float:
    import onnxruntime as ort
    import torch

    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    worst = 0.0
    min_size = int(model.transform.min_size[0])  # type: ignore[attr-defined]
    max_size = int(model.transform.max_size)  # type: ignore[attr-defined]
    for path in list(sample_images)[:2]:
        # resize on the host to the model's own size (as the runtime adapter does): the
        # graph's float32 resize can land a pixel off PyTorch's, which is not an export bug
        x = frcnn_tensor(path)
        h, w = x.shape[1:]
        scale = min(min_size / min(h, w), max_size / max(h, w))
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        x = np.ascontiguousarray(
            cv2.resize(x.transpose(1, 2, 0), size, interpolation=cv2.INTER_LINEAR).transpose(
                2, 0, 1
            )
        )
        with torch.no_grad():
            ref = model([torch.from_numpy(x)])[0]  # type: ignore[operator]
        boxes, labels, scores = sess.run(None, {"images": x})
        worst = max(
            worst,
            _match_detections(
                f"{onnx_path.name} on {path.name}",
                (boxes, labels, scores),
                (ref["boxes"].numpy(), ref["labels"].numpy(), ref["scores"].numpy()),
            ),
        )
    return worst


def _match_detections(
    name: str,
    got: tuple[np.ndarray, np.ndarray, np.ndarray],
    ref: tuple[np.ndarray, np.ndarray, np.ndarray],
    *,
    top: int = 20,
    box_atol: float = 0.05,
    box_rtol: float = 1e-3,
    score_atol: float = 2e-3,
) -> float:
    """ONNX Runtime's top detections have PyTorch detections of the same class, score
    (within score_atol) and box (within box_atol + box_rtol*|ref|); the largest difference.

    Matched, not compared position by position, and a few may go unmatched: a weak model
    has many near-equal scores, so proposals and detections at the margin can come out in
    another order or be cut differently, which is not an export bug. An export bug
    (preprocessing, decoding, labels) moves them all: the best detection must match, and
    at most one in five of the rest may not.
    """
    boxes, labels, scores = got
    ref_boxes, ref_labels, ref_scores = ref
    k = min(top, len(scores), len(ref_scores))
    pool = min(len(ref_scores), k + 10)  # the k-th place itself can be a tie
    used: set[int] = set()
    worst = 0.0
    unmatched: list[str] = []
    for i in range(k):
        near = [
            j
            for j in range(pool)
            if j not in used
            and ref_labels[j] == labels[i]
            and abs(float(ref_scores[j]) - float(scores[i])) <= score_atol
        ]
        diffs = {j: float(np.abs(ref_boxes[j] - boxes[i]).max()) for j in near}
        ok = [
            j
            for j, d in diffs.items()
            if d <= box_atol + box_rtol * float(np.abs(ref_boxes[j]).max())
        ]
        if not ok:
            unmatched.append(
                f"detection {i} (class {int(labels[i])}, score {float(scores[i]):.4f}, "
                f"box {np.round(boxes[i], 2).tolist()})"
            )
            if i == 0 or len(unmatched) > max(1, k // 5):
                raise ExportError(
                    f"{name}: ONNX Runtime and PyTorch outputs differ: {len(unmatched)} of the "
                    f"top {i + 1} detections have no PyTorch detection within {box_atol} + "
                    f"{box_rtol}*|ref| px and {score_atol} score, e.g. {unmatched[-1]}"
                )
            continue
        j = min(ok, key=diffs.__getitem__)
        used.add(j)
        worst = max(worst, diffs[j], abs(float(ref_scores[j]) - float(scores[i])))
    return worst
