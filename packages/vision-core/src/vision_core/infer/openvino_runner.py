"""OpenVINO as a `Runner`: the same ONNX files (or an IR .xml) compiled for the CPU.

Imported only when `infer.runtime` is `openvino` (or `auto` finds it installed): a device
without the `openvino` extra never loads it.

- Precision: `fp32`, `bf16` and `fp16` set the CPU plugin's inference precision hint
  (bf16/fp16 only where the CPU has them: OPTIMIZATION_CAPABILITIES); `int8` runs the
  INT8 model beside the FP32 one (`<stem>-int8.xml`, the NNCF IR, else `<stem>-int8.onnx`,
  the ONNX Runtime QDQ export, which OpenVINO reads as quantized), its float parts at fp32.
- Concurrency: a compiled model keeps a pool of infer requests; each `run` takes an idle
  one (or makes one), so several threads may call `run` at once. `streams` > 1 compiles
  for throughput (one CPU stream per concurrent run, as the server's runners use it);
  1 compiles for latency (one stream over every thread, as the edge's single loop).
- threads: threads per stream, like ONNX Runtime's intra-op. 0 with one stream: all
  cores but one, which is left to the frame pipeline (decode and letterbox of the next
  frame run beside the model in vision-edge). Measured in vision-edge local mode on a
  2-core EPYC (yolo11n 640, 1280x720 video, bf16, a loaded machine, interleaved): 7.7 and
  6.5 fps with one thread vs 5.7 and 4.9 fps with OpenVINO's default two (ONNX Runtime
  FP32: 4.1 and 3.0 fps). Threads are not pinned to cores: the CPU is shared.
"""

from __future__ import annotations

import os
import queue
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vision_core.errors import ModelLoadError
from vision_core.infer.openvino_telemetry import quiet_openvino
from vision_core.infer.runner import TensorInfo

with quiet_openvino():  # no usage events to Google Analytics (see the module)
    import openvino as ov

__all__ = ["OpenVinoRunner", "cpu_capabilities", "openvino_version"]

_HINTS = {"fp32": "f32", "bf16": "bf16", "fp16": "f16", "int8": "f32"}
_CAPS = {"bf16": "BF16", "fp16": "FP16"}
_TYPES = {
    "f32": "tensor(float)",
    "f16": "tensor(float16)",
    "bf16": "tensor(bfloat16)",
    "f64": "tensor(double)",
    "i64": "tensor(int64)",
    "i32": "tensor(int32)",
    "u8": "tensor(uint8)",
    "i8": "tensor(int8)",
    "boolean": "tensor(bool)",
}

_core: ov.Core | None = None


def _get_core() -> ov.Core:
    global _core
    if _core is None:
        _core = ov.Core()
    return _core


def openvino_version() -> str:
    return str(ov.get_version()).split("-")[0]


def cpu_capabilities() -> list[str]:
    """The CPU plugin's OPTIMIZATION_CAPABILITIES (e.g. FP32, BF16, INT8)."""
    return [str(c) for c in _get_core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")]


def _shape(ps: ov.PartialShape) -> tuple[int | None, ...]:
    if ps.rank.is_dynamic:
        return ()
    return tuple(d.get_length() if d.is_static else None for d in ps)


def _info(port: Any, index: int) -> TensorInfo:
    names = port.get_names()
    name = port.get_any_name() if names else f"output{index}"
    etype = port.get_element_type().get_type_name()
    return TensorInfo(name, _shape(port.get_partial_shape()), _TYPES.get(etype, f"tensor({etype})"))


def _metadata(model: ov.Model) -> dict[str, str]:
    """The ONNX metadata_props, which OpenVINO keeps in the model's rt_info["framework"]."""
    if not model.has_rt_info(["framework"]):
        return {}
    section = model.get_rt_info()["framework"]
    out: dict[str, str] = {}
    for key, value in section.items():
        raw = value.value if hasattr(value, "value") else value
        out[str(key)] = raw if isinstance(raw, str) else str(raw)
    return out


class OpenVinoRunner:
    """A model compiled by OpenVINO for the CPU (see the module docstring)."""

    runtime = "openvino"

    def __init__(
        self,
        path: str | Path,
        *,
        precision: str = "fp32",
        threads: int = 0,
        streams: int = 1,
    ) -> None:
        if precision not in _HINTS:
            raise ValueError(f"precision must be one of {sorted(_HINTS)}, got {precision!r}")
        if threads < 0 or streams < 1:
            raise ValueError(f"threads must be >= 0 and streams >= 1, got {threads}, {streams}")
        p = Path(path)
        if not p.is_file():
            raise ModelLoadError(f"model file not found: {p}")
        core = _get_core()
        caps = cpu_capabilities()
        if precision in _CAPS and _CAPS[precision] not in caps:
            raise ModelLoadError(
                f"infer.precision = {precision!r}: this CPU has no {_CAPS[precision]} support "
                f"in OpenVINO (capabilities {', '.join(caps)}); use fp32 or int8"
            )
        try:
            model = core.read_model(str(p))
        except Exception as exc:  # OpenVINO raises RuntimeError with a long trace
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelLoadError(f"{p} is not a valid ONNX model or OpenVINO IR: {first}") from exc
        config: dict[str, Any] = {
            "INFERENCE_PRECISION_HINT": _HINTS[precision],
            "PERFORMANCE_HINT": "LATENCY" if streams == 1 else "THROUGHPUT",
            "NUM_STREAMS": str(streams),
        }
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads * streams
        elif streams == 1 and (os.cpu_count() or 1) > 1:
            config["INFERENCE_NUM_THREADS"] = (os.cpu_count() or 1) - 1
        # threads float between cores (the CPU is shared with decoding and other processes)
        config["ENABLE_CPU_PINNING"] = False
        try:
            self._compiled = core.compile_model(model, "CPU", config)
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelLoadError(f"{p}: OpenVINO cannot compile this model: {first}") from exc
        self.model_path = str(p)
        self.precision = precision
        self.device = "CPU"
        self.streams = streams
        self.inputs = tuple(_info(port, i) for i, port in enumerate(self._compiled.inputs))
        self.outputs = tuple(_info(port, i) for i, port in enumerate(self._compiled.outputs))
        self.metadata = _metadata(model)
        self._out_index = {o.name: i for i, o in enumerate(self.outputs)}
        self._idle: queue.SimpleQueue[ov.InferRequest] = queue.SimpleQueue()
        for _ in range(streams):
            self._idle.put(self._compiled.create_infer_request())

    def run(
        self, output_names: Sequence[str] | None, feeds: Mapping[str, np.ndarray]
    ) -> list[np.ndarray]:
        try:
            request = self._idle.get_nowait()
        except queue.Empty:  # more concurrent callers than streams: one more request
            request = self._compiled.create_infer_request()
        try:
            # share_inputs: the tensor is ours until run returns; outputs are copied out
            result = request.infer(dict(feeds), share_inputs=True, share_outputs=False)
            values = result.to_tuple()
        finally:
            self._idle.put(request)
        if output_names is None:
            return [np.asarray(v) for v in values]
        return [np.asarray(values[self._out_index[n]]) for n in output_names]

    def __repr__(self) -> str:
        return f"OpenVinoRunner({self.model_path!r}, CPU, {self.precision}, streams={self.streams})"
