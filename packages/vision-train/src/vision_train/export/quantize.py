"""INT8 quantization with ONNX Runtime.

- static (default for YOLO): QDQ format, per-channel weights, activations calibrated on
  training images through the runtime's own letterbox preprocessing; 7-bit weights on x86
  CPUs without VNNI, where full-range 8-bit weights saturate (they lost 0.05 mAP50 here,
  7-bit lost none). Every op type ONNX Runtime can run in INT8 is quantized (Conv, the
  SiLU's Sigmoid and Mul, Concat, Add, MaxPool, Resize, Split, the attention's MatMul and
  Softmax), so the backbone runs INT8 from the first Conv to the head with no float islands.
  The Detect head's DFL (reshape, transpose and softmax of the box logits, then its fixed
  0..15 expectation conv) is quantized too: its float softmax with the transposes around it
  was ~10% of the INT8 run time, and it only ever sees box logits, so one scale fits
  (yolo11n at 640 on a 2-core AVX2 EPYC, benchmarks/bench_int8.py: INT8 session about
  1.5x -> 1.6-1.7x faster than FP32; mAP50 0.004 below FP32, 0.001 below the INT8 that kept
  the DFL in float). The rest of the head's tail stays in float: the class
  reshapes/concat, the sigmoid, the box decoding and the final concat of pixel boxes with
  0..1 scores; quantizing that concat with one scale collapses the
  confidences to zero, a known failure of naive static YOLO quantization.
  Tried and not kept (same model, interleaved): QOperator format (no faster than QDQ, which
  ONNX Runtime fuses into the same QLinear kernels), U8U8 (exact on AVX2 but 1.1x only),
  leaving SiLU or everything but Conv in float (1.1x: a Q/DQ pair per layer), entropy
  calibration (same mAP50 as MinMax, minutes slower), skipping quant_pre_process or
  keeping Resize in float (no gain).
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
from vision_train.export.common import place_file

_TOP_MODULE = re.compile(r"^/model\.(\d+)/")


def yolo_head_nodes_to_exclude(model_path: Path, *, quantize_dfl: bool = True) -> list[str]:
    """The Detect head's tail to keep in float: every node of the last top-level module
    outside its conv branches (cv2.* boxes, cv3.* classes), i.e. the reshapes, concats,
    DFL, box decoding and the final sigmoid. The branches' Conv+SiLU stay quantized (fewer
    Q/DQ hops). With quantize_dfl (default) the DFL and what feeds it (the box logits'
    reshapes and concat, the DFL reshape/transpose/softmax and its conv) are quantized as
    well: they see box logits only, and the float softmax was the largest float cost left."""
    import onnx

    graph = onnx.load(str(model_path), load_external_data=False).graph
    indices = [int(m.group(1)) for n in graph.node if (m := _TOP_MODULE.match(n.name))]
    if not indices:
        return []
    head = f"/model.{max(indices)}/"
    branches = (f"{head}cv2.", f"{head}cv3.", f"{head}one2one_cv2.", f"{head}one2one_cv3.")
    tail = [n for n in graph.node if n.name.startswith(head) and not n.name.startswith(branches)]
    dfl_convs = [n for n in tail if n.op_type == "Conv" and "/dfl/" in n.name]
    if quantize_dfl and len(dfl_convs) == 1:
        # the DFL conv and its ancestors inside the tail: only box logits flow there
        producer = {out: n for n in tail for out in n.output}
        keep: set[str] = set()
        stack = [dfl_convs[0]]
        while stack:
            node = stack.pop()
            if node.name not in keep:
                keep.add(node.name)
                stack.extend(producer[i] for i in node.input if i in producer)
        tail = [n for n in tail if n.name not in keep]
    return [n.name for n in tail]


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
    symbolic_shape: bool = True,
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
            # symbolic_shape=False for graphs known to defeat ONNX Runtime's symbolic shape
            # inference (Faster R-CNN: it fails there after minutes on a small CPU)
            quant_pre_process(str(fp32), str(prepped), skip_symbolic_shape=not symbolic_shape)
        except Exception:  # some graphs defeat shape inference: quantize the original
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
        place_file(tmp_out, out)
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
        place_file(tmp_out, out)
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
