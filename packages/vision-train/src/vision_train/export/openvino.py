"""OpenVINO IR INT8 of a YOLO ONNX export: NNCF post-training quantization.

`export_openvino_int8(fp32_onnx, calib_images, out_dir)` writes `<stem>-int8.xml/.bin`
beside where `<stem>.onnx` lives on a device, which is where `infer.precision = int8`
with `infer.runtime = openvino` (or `auto`) looks for it:

- calibration: the images through the runtime's own letterbox preprocessing
  (`export.common.yolo_tensor`, as the ONNX static INT8 export);
- kept in float: the Detect head's post-processing, the same nodes the ONNX static INT8
  keeps in float (`quantize.yolo_head_nodes_to_exclude`: class reshapes/concat, sigmoid,
  box decoding, the final concat of pixel boxes with 0..1 scores), plus the node that
  produces the graph output; NNCF's MIXED preset (symmetric weights, asymmetric
  activations), as ultralytics' OpenVINO INT8 export uses;
- the gate, with a dataset: the same as the ONNX INT8 export (vision_train.pipeline):
  mAP50 through the runtime adapters (`evaluate_onnx`, which runs an .xml on OpenVINO),
  p50 latency interleaved with the FP32 model on ONNX Runtime (`compare_latency`), problems
  when INT8 is slower or loses more than `max_map_drop`; `on_regression` = warn (keep it,
  report), fallback (delete the IR: devices then run FP32; nothing misnamed is left) or
  fail (ExportError).

Needs `openvino` and `nncf` (the workspace's dev environment has both).
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from vision_core.errors import require
from vision_train.errors import ExportError

if TYPE_CHECKING:
    from vision_train.dataset import DatasetInfo

__all__ = ["export_openvino_int8", "openvino_int8_path"]


def openvino_int8_path(fp32: Path, out_dir: Path) -> Path:
    """Where the IR of `fp32` goes: `<out_dir>/<stem>-int8.xml` (and its .bin)."""
    return out_dir / f"{fp32.stem}-int8.xml"


def _imgsz(fp32: Path) -> int:
    """The square size the calibration images are letterboxed to."""
    from vision_core.infer.layout import read_yolo_layout
    from vision_core.infer.runtimes import open_runner

    layout = read_yolo_layout(open_runner(fp32, runtime="onnxruntime"))
    if layout.input_size is not None:
        if layout.input_size[0] != layout.input_size[1]:
            raise ExportError(
                f"{fp32}: OpenVINO INT8 needs a square input, got {layout.input_size}"
            )
        return layout.input_size[0]
    return layout.imgsz


def export_openvino_int8(
    fp32: Path,
    calib_images: Sequence[Path],
    out_dir: Path,
    *,
    info: DatasetInfo | None = None,
    max_map_drop: float = 0.02,
    on_regression: Literal["warn", "fallback", "fail"] = "warn",
    latency_images: int = 16,
) -> dict[str, Any]:
    """Quantize the YOLO ONNX `fp32` to an OpenVINO IR INT8 in `out_dir` (see the module
    docstring); with `info` (a validated dataset) also evaluate it against FP32 and apply
    the INT8 gate. Returns what to record: paths, quantization settings, metrics, problems.
    """
    require("openvino", "vision-core[openvino]", "the OpenVINO INT8 export")
    require("nncf", "vision-train[openvino]", "the OpenVINO INT8 export")
    # NNCF sends usage telemetry (Google Analytics) unless told it runs in CI: nothing here
    # may reach the network (the train tests' network guard checks it)
    os.environ.setdefault("NNCF_CI", "1")
    from vision_core.infer.openvino_telemetry import quiet_openvino

    with quiet_openvino():  # NNCF imports OpenVINO too
        import nncf
        import openvino as ov

    logging.getLogger("nncf").setLevel(logging.WARNING)  # no per-node INFO lines
    from vision_train.export.common import yolo_tensor
    from vision_train.export.quantize import yolo_head_nodes_to_exclude

    fp32 = Path(fp32).resolve()
    if not fp32.is_file():
        raise ExportError(f"OpenVINO INT8: FP32 model not found: {fp32}")
    if not calib_images:
        raise ExportError(
            "OpenVINO INT8 needs calibration images (export.calib_samples); found none"
        )
    core = ov.Core()
    model = core.read_model(str(fp32))
    imgsz = _imgsz(fp32)
    exclude = list(yolo_head_nodes_to_exclude(fp32))
    exclude += [r.input_value(0).get_node().get_friendly_name() for r in model.get_results()]
    images = list(calib_images)
    dataset = nncf.Dataset(images, lambda p: yolo_tensor(p, imgsz))
    try:
        quantized = nncf.quantize(
            model,
            dataset,
            preset=nncf.QuantizationPreset.MIXED,
            subset_size=len(images),
            ignored_scope=nncf.IgnoredScope(names=exclude, validate=False),
        )
    except Exception as exc:  # NNCF raises many types
        raise ExportError(f"NNCF quantization of {fp32} failed: {exc}") from exc
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = openvino_int8_path(fp32, out_dir)
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".ov-int8-") as tmp:
        staged = Path(tmp) / target.name
        ov.save_model(quantized, str(staged), compress_to_fp16=False)
        # the .bin first: an .xml is only ever beside a complete .bin
        os.replace(staged.with_suffix(".bin"), target.with_suffix(".bin"))
        os.replace(staged, target)
    report: dict[str, Any] = {
        "model_int8_ir": str(target),
        "mode": "nncf-ptq",
        "preset": "mixed",
        "calib_images": len(images),
        "imgsz": imgsz,
        "excluded_nodes": len(exclude),
        "openvino": str(ov.get_version()).split("-")[0],
        "nncf": str(nncf.__version__),
    }
    if info is not None:
        report.update(_gate(fp32, target, info, max_map_drop, on_regression, latency_images))
    return report


def _gate(
    fp32: Path,
    ir: Path,
    info: DatasetInfo,
    max_map_drop: float,
    on_regression: str,
    latency_images: int,
) -> dict[str, Any]:
    """The ONNX INT8 export's gate, applied to the IR (see the module docstring)."""
    from vision_train.evaluate import compare_latency, evaluate_onnx

    fp32_metrics = evaluate_onnx(fp32, info)
    int8_metrics = evaluate_onnx(ir, info)
    latency = compare_latency({"fp32": fp32, "int8": ir}, info.splits["val"][:latency_images])
    speedup = latency["fp32"] / latency["int8"] if latency["int8"] else 0.0
    drop = fp32_metrics.map50 - int8_metrics.map50
    problems = []
    if speedup < 1.0:
        problems.append(
            f"OpenVINO INT8 is slower than FP32: {latency['int8']:.1f} ms vs "
            f"{latency['fp32']:.1f} ms"
        )
    if drop > max_map_drop:
        problems.append(
            f"OpenVINO INT8 loses {drop:.3f} mAP50 (> export.max_map_drop {max_map_drop})"
        )
    out: dict[str, Any] = {
        "fp32": fp32_metrics.as_dict(),
        "int8": int8_metrics.as_dict(),
        "latency_ms_p50": {k: round(v, 3) for k, v in latency.items()},
        "speedup": round(speedup, 3),  # vs the FP32 ONNX on ONNX Runtime
        "map50_drop": round(drop, 6),
        "problems": problems,
        "fallback": False,
    }
    if problems:
        msg = "; ".join(problems)
        if on_regression == "fail":
            raise ExportError(msg + " (export.on_regression = fail)")
        if on_regression == "fallback":
            ir.unlink(missing_ok=True)
            ir.with_suffix(".bin").unlink(missing_ok=True)
            out["fallback"] = True
            out["model_int8_ir"] = None
    return out
