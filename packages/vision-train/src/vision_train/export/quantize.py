"""INT8 quantization with ONNX Runtime.

- static (default for YOLO): QDQ format, per-channel weights, activations calibrated on
  training images through the runtime's own letterbox preprocessing; 7-bit weights on x86
  CPUs without VNNI, where full-range 8-bit weights saturate (they lost 0.05 mAP50 here,
  7-bit lost none). The detection head's
  final nodes (DFL, box decoding, the concat of boxes with class scores, sigmoid) stay in
  float: quantizing that concat with one scale for pixel boxes and 0..1 scores collapses the
  confidences to zero, a known failure of naive static YOLO quantization.
- dynamic: weights to INT8 (ConvInteger/MatInteger) at load; kept for compatibility. On a
  CPU it is usually SLOWER than FP32 for CNNs, which the export measures and reports.
"""

from __future__ import annotations

import contextlib
import re
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

from vision_train.errors import ExportError

_TOP_MODULE = re.compile(r"^/model\.(\d+)/")


def yolo_head_nodes_to_exclude(model_path: Path) -> list[str]:
    """The Detect head's tail: every node of the last top-level module outside its conv
    branches (cv2.* boxes, cv3.* classes), i.e. the reshapes, concats, DFL, box decoding
    and the final sigmoid. The branches' Conv+SiLU stay quantized (fewer Q/DQ hops)."""
    import onnx

    graph = onnx.load(str(model_path), load_external_data=False).graph
    indices = [int(m.group(1)) for n in graph.node if (m := _TOP_MODULE.match(n.name))]
    if not indices:
        return []
    head = f"/model.{max(indices)}/"
    branches = (f"{head}cv2.", f"{head}cv3.", f"{head}one2one_cv2.", f"{head}one2one_cv3.")
    return [
        n.name for n in graph.node if n.name.startswith(head) and not n.name.startswith(branches)
    ]


_METHODS = {
    "minmax": lambda cm: cm.MinMax,
    "percentile": lambda cm: cm.Percentile,
    "entropy": lambda cm: cm.Entropy,
}


class _Reader:
    """onnxruntime CalibrationDataReader over preprocessed images."""

    def __init__(self, input_name: str, tensors: Iterator[np.ndarray]) -> None:
        self.input_name = input_name
        self._it = tensors

    def get_next(self) -> dict[str, np.ndarray] | None:
        x = next(self._it, None)
        return None if x is None else {self.input_name: x}

    def rewind(self) -> None:  # pragma: no cover - not used by MinMax
        raise NotImplementedError


def quantize_static_qdq(
    fp32: Path,
    out: Path,
    calib_images: Sequence[Path],
    preprocess: Callable[[Path], np.ndarray],
    *,
    exclude: Sequence[str] = (),
    op_types: Sequence[str] | None = None,
    method: str = "minmax",
    reduce_range: bool | None = None,
) -> dict[str, object]:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if not calib_images:
        raise ExportError(
            "static INT8 needs calibration images (export.calib_samples training images); found none"
        )
    import onnxruntime as ort

    fp32, out = fp32.resolve(), out.resolve()
    # ONNX Runtime's shape inference drops temp files into the current directory: keep
    # them in our temp dir
    seven_bit = _reduce_range() if reduce_range is None else reduce_range
    with tempfile.TemporaryDirectory() as tmp, contextlib.chdir(tmp):
        prepped = Path(tmp) / "prep.onnx"
        try:
            quant_pre_process(str(fp32), str(prepped), skip_symbolic_shape=False)
        except Exception:  # some graphs defeat symbolic shape inference: quantize the original
            prepped = fp32
        input_name = (
            ort.InferenceSession(str(prepped), providers=["CPUExecutionProvider"])
            .get_inputs()[0]
            .name
        )
        reader = _Reader(input_name, (preprocess(p) for p in calib_images))
        tmp_out = Path(tmp) / "int8.onnx"
        quantize_static(
            str(prepped),
            str(tmp_out),
            reader,
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            reduce_range=seven_bit,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=_METHODS[method](CalibrationMethod),
            nodes_to_exclude=list(exclude),
            op_types_to_quantize=list(op_types) if op_types else None,
            extra_options={
                "ActivationSymmetric": False,
                "WeightSymmetric": True,
                "CalibPercentile": 99.999,
            },
        )
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp_out.replace(out)
    return {
        "mode": "static",
        "calibration": method,
        "reduce_range": seven_bit,
        "format": "QDQ",
        "per_channel": True,
        "calib_images": len(calib_images),
        "excluded_nodes": len(exclude),
    }


def quantize_dynamic_int8(fp32: Path, out: Path) -> dict[str, object]:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    fp32, out = fp32.resolve(), out.resolve()
    with tempfile.TemporaryDirectory() as tmp, contextlib.chdir(tmp):
        tmp_out = Path(tmp) / "int8.onnx"
        quantize_dynamic(str(fp32), str(tmp_out), weight_type=QuantType.QInt8)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp_out.replace(out)
    return {"mode": "dynamic", "weight_type": "QInt8"}


def _reduce_range() -> bool:
    """7-bit weights on x86 CPUs without VNNI: their u8*s8 multiply-add (VPMADDUBSW)
    saturates 16-bit sums with full 8-bit weights, which costs accuracy; ONNX Runtime
    recommends reduce_range there. With VNNI (or on ARM) full range is exact."""
    import platform

    if platform.machine().lower() not in {"x86_64", "amd64", "i386", "i686"}:
        return False
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            flags = fh.read()
    except OSError:
        return True
    return not any(f in flags for f in ("avx512_vnni", "avx_vnni", "amx_int8"))
