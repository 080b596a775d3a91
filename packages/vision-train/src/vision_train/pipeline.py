"""After training: export ONNX, quantize INT8, evaluate both, apply the regression policy.

Every backend goes through the same steps; what differs (the exporter, the INT8
calibration) is a method of its TrainBackend object. The exporters work on a copy of the
checkpoint in a temporary dir, so nothing is ever written beside the user's file; only
the run dir receives results.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from pathlib import Path
from typing import Any

from vision_core.kernel import RunContext
from vision_train.backends.base import TrainBackend
from vision_train.dataset import DatasetInfo
from vision_train.errors import ExportError
from vision_train.evaluate import compare_latency, evaluate_onnx
from vision_train.export.common import place_file, write_metadata
from vision_train.export.quantize import quantize_dynamic_int8, quantize_static_qdq


def export_fp32(
    ctx: RunContext, checkpoint: Path, info: DatasetInfo, backend: TrainBackend
) -> tuple[Path, dict[str, Any]]:
    out = ctx.run_dir / "model.onnx"
    samples = info.splits["val"][:3]
    with (
        tempfile.TemporaryDirectory(prefix="vision-export-") as tmp,
        contextlib.chdir(tmp),  # a stray file of an exporter lands here too
    ):
        work = Path(tmp) / "checkpoint" / checkpoint.name
        work.parent.mkdir()
        shutil.copyfile(checkpoint, work)  # a plain copy: writable even from a read-only dir
        tmp_out = Path(tmp) / "model.onnx"
        meta = backend.export_onnx(work, tmp_out, ctx.config, samples)
        place_file(tmp_out, out)
    ctx.logger.info(
        "export.onnx", f"exported {out.name}", **{k: v for k, v in meta.items() if k != "names"}
    )
    return out, meta


def quantize(
    ctx: RunContext, fp32: Path, info: DatasetInfo, backend: TrainBackend
) -> tuple[Path, dict[str, Any]]:
    cfg = ctx.config.export
    out = ctx.run_dir / "model-int8.onnx"
    if cfg.quantize_mode == "dynamic":
        meta = quantize_dynamic_int8(fp32, out)
    else:
        calib = backend.calibration(ctx.config, fp32)
        meta = quantize_static_qdq(
            fp32, out, info.splits["train"][: cfg.calib_samples], calib.preprocess, **calib.options
        )
    write_metadata(out, {"precision": "int8"})
    ctx.logger.info("export.int8", f"quantized {out.name} ({meta['mode']})", **meta)
    return out, meta


def export_quantize_evaluate(
    ctx: RunContext, checkpoint: Path, info: DatasetInfo, *, backend: TrainBackend
) -> dict[str, Any]:
    cfg = ctx.config.export
    log = ctx.logger
    fp32, export_meta = export_fp32(ctx, checkpoint, info, backend)
    ctx.metrics["export"] = {k: v for k, v in export_meta.items() if k != "names"}
    fp32_metrics = evaluate_onnx(fp32, info)
    ctx.metrics["fp32"] = fp32_metrics.as_dict()
    log.info(
        "eval.fp32", f"FP32 mAP50 {fp32_metrics.map50:.3f} mAP50-95 {fp32_metrics.map50_95:.3f}"
    )
    artifacts: dict[str, Any] = {
        "model_path": str(fp32),
        "model_precision": "fp32",
        "model_int8_path": None,
        "model_int8_precision": None,
    }
    if not cfg.quantize:
        return artifacts
    int8, qmeta = quantize(ctx, fp32, info, backend)
    int8_metrics = evaluate_onnx(int8, info)
    latency = compare_latency({"fp32": fp32, "int8": int8}, info.splits["val"][:16])
    speedup = latency["fp32"] / latency["int8"] if latency["int8"] else 0.0
    drop = fp32_metrics.map50 - int8_metrics.map50
    ctx.metrics["int8"] = {**int8_metrics.as_dict(), **qmeta}
    ctx.metrics["latency_ms_p50"] = {k: round(v, 3) for k, v in latency.items()}
    ctx.metrics["int8_speedup"] = round(speedup, 3)
    ctx.metrics["int8_map50_drop"] = round(drop, 6)
    log.info(
        "eval.int8",
        f"INT8 mAP50 {int8_metrics.map50:.3f} (drop {drop:+.3f}), {speedup:.2f}x FP32 speed",
    )
    problems = []
    if speedup < 1.0:
        problems.append(
            f"INT8 ({qmeta['mode']}) is slower than FP32: {latency['int8']:.1f} ms vs {latency['fp32']:.1f} ms"
        )
    if drop > cfg.max_map_drop:
        problems.append(f"INT8 loses {drop:.3f} mAP50 (> export.max_map_drop {cfg.max_map_drop})")
    ctx.metrics["int8_problems"] = problems
    precision = "int8"
    if problems:
        msg = "; ".join(problems)
        if cfg.on_regression == "fail":
            raise ExportError(msg + " (export.on_regression = fail)")
        if cfg.on_regression == "fallback":
            # the file keeps its name (deployments point at it), its metadata and every
            # record say what it holds: the FP32 model
            place_file(fp32, int8)
            precision = "fp32"
            ctx.metrics["int8_fallback"] = True
            log.warn(
                "export.int8_fallback",
                msg + ": model-int8.onnx holds the FP32 model (precision fp32 in its metadata)",
            )
        else:
            log.warn("export.int8_regression", msg)
    ctx.metrics["int8"]["precision"] = precision
    artifacts["model_int8_path"] = str(int8)
    artifacts["model_int8_precision"] = precision
    if cfg.openvino_int8 and backend.name == "yolo":
        artifacts.update(_openvino_int8(ctx, fp32, info))
    return artifacts


def _openvino_int8(ctx: RunContext, fp32: Path, info: DatasetInfo) -> dict[str, Any]:
    """export.openvino_int8: the OpenVINO IR INT8 beside the ONNX ones, with the same gate."""
    from vision_train.export.openvino import export_openvino_int8

    cfg = ctx.config.export
    res = export_openvino_int8(
        fp32,
        info.splits["train"][: cfg.calib_samples],
        ctx.run_dir,
        info=info,
        max_map_drop=cfg.max_map_drop,
        on_regression=cfg.on_regression,
    )
    ctx.metrics["openvino_int8"] = res
    return {"model_int8_ir": res.get("model_int8_ir")}
