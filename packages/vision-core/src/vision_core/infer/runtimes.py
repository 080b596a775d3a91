"""Which runtimes can run a model here, and the one place a `Runner` is opened.

Runtimes: `onnxruntime` (always installed with vision-core[infer]) and `openvino` (the
`openvino` extra). A runtime's module is imported only when it is chosen: `openvino` is
never imported unless `infer.runtime` names it or `auto` tunes with it.

Precision (`infer.precision`): `fp32` runs the model file as given; `bf16`/`fp16` are
OpenVINO's inference precision on CPUs that have them; `int8` runs the INT8 model
vision-train writes beside the FP32 one: `<stem>-int8.onnx` (static QDQ, both runtimes)
or `<stem>-int8.xml` (OpenVINO IR from NNCF, OpenVINO only, preferred by it).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import importlib.util
import os
import platform
from pathlib import Path
from typing import TYPE_CHECKING, cast

from vision_core.errors import ConfigError, MissingDependencyError, ModelLoadError
from vision_core.infer.runner import OrtRunner, Runner, as_runner

if TYPE_CHECKING:
    import onnxruntime as ort

    from vision_core.logging import StructuredLogger

__all__ = [
    "PRECISIONS",
    "RUNTIMES",
    "available_runtimes",
    "cpu_description",
    "file_sha256",
    "int8_model_for",
    "open_runner",
    "runtime_for_file",
    "runtime_installed",
    "runtime_precisions",
    "runtime_versions",
]

RUNTIMES = ("onnxruntime", "openvino")
PRECISIONS = ("fp32", "bf16", "fp16", "int8")
_MODULES = {"onnxruntime": "onnxruntime", "openvino": "openvino"}
_DISTS = {"onnxruntime": ("onnxruntime", "onnxruntime-gpu"), "openvino": ("openvino",)}
_ISA_FLAGS = (
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "avx_vnni",
    "amx_bf16",
    "amx_int8",
    "amx_tile",
    "asimd",
    "asimddp",
    "sve",
    "bf16",
    "i8mm",
)


def runtime_installed(name: str) -> bool:
    """Whether the runtime's Python module can be imported (without importing it)."""
    try:
        return importlib.util.find_spec(_MODULES[name]) is not None
    except (ImportError, ValueError):  # a broken install, or an import blocker
        return False


def available_runtimes() -> list[str]:
    return [r for r in RUNTIMES if runtime_installed(r)]


def require_runtime(name: str) -> None:
    """MissingDependencyError naming the extra to install when `name` is not installed."""
    if name not in RUNTIMES:
        raise ConfigError(f"infer.runtime: unknown runtime {name!r} (known: {', '.join(RUNTIMES)})")
    if not runtime_installed(name):
        raise MissingDependencyError(
            _MODULES[name],
            f"vision-edge[{name}]",
            f"infer.runtime = '{name}'; on a server: vision-server[{name}], a library: "
            f"vision-core[{name}]",
        )


def runtime_versions() -> dict[str, str]:
    """Installed version of each runtime (from the package metadata, no import)."""
    out: dict[str, str] = {}
    for name, dists in _DISTS.items():
        for dist in dists:
            try:
                out[name] = importlib.metadata.version(dist)
                break
            except importlib.metadata.PackageNotFoundError:
                continue
    return out


@functools.cache
def cpu_description() -> tuple[str, tuple[str, ...]]:
    """(CPU model name, the ISA flags that matter to inference) from /proc/cpuinfo."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                key = key.strip()
                if key in ("model name", "Model", "Hardware") and value.strip():
                    model = value.strip()
                elif key in ("flags", "Features"):
                    flags.update(value.split())
                if key == "" and flags:  # first processor done
                    break
    except OSError:
        pass
    return model, tuple(f for f in _ISA_FLAGS if f in flags)


def file_sha256(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def int8_model_for(path: str | os.PathLike[str], runtime: str) -> Path | None:
    """The INT8 model to run for FP32 `path` on `runtime`, or None when there is none.

    A path whose stem already ends in `-int8` is its own INT8 model.
    """
    p = Path(path)
    if p.stem.endswith("-int8"):
        return p
    ir, onnx = p.with_name(f"{p.stem}-int8.xml"), p.with_name(f"{p.stem}-int8.onnx")
    if runtime == "openvino" and ir.is_file() and ir.with_suffix(".bin").is_file():
        return ir
    return onnx if onnx.is_file() else None


def runtime_precisions(runtime: str, provider: str = "cpu") -> list[str]:
    """The precisions `runtime` offers on this machine (int8 also needs an INT8 model)."""
    if runtime == "onnxruntime":
        return ["fp32", "int8"] if provider == "cpu" else ["fp32"]
    if not runtime_installed("openvino") or provider != "cpu":
        return []
    from vision_core.infer.openvino_runner import cpu_capabilities

    caps = cpu_capabilities()
    return ["fp32"] + [p for p, c in (("bf16", "BF16"), ("fp16", "FP16")) if c in caps] + ["int8"]


def _model_for(path: Path, runtime: str, precision: str) -> Path:
    if precision != "int8":
        if runtime == "onnxruntime" and path.suffix.lower() == ".xml":
            raise ConfigError(
                f"infer.model_path: {path} is an OpenVINO IR; onnxruntime needs the .onnx "
                "(set infer.runtime = openvino)"
            )
        return path
    found = int8_model_for(path, runtime)
    if found is None:
        want = f"{path.stem}-int8.onnx" + (" or -int8.xml" if runtime == "openvino" else "")
        raise ModelLoadError(
            f"infer.precision = 'int8': no INT8 model beside {path} (want {want}; vision-train "
            "writes it with export.quantize = true)"
        )
    return found


def runtime_for_file(path: str | os.PathLike[str]) -> str:
    """The runtime a model file implies: OpenVINO for an IR (.xml), else ONNX Runtime."""
    return "openvino" if Path(path).suffix.lower() == ".xml" else "onnxruntime"


def open_runner(
    path: str | os.PathLike[str] | Runner | ort.InferenceSession,
    *,
    runtime: str | None = None,
    precision: str = "fp32",
    provider: str = "cpu",
    threads: int = 0,
    streams: int = 1,
    logger: StructuredLogger | None = None,
    gpu_hint: str = "onnxruntime-gpu",
) -> Runner:
    """Open the model at `path` on `runtime` at `precision` (see the module docstring).

    runtime None: the file's own (`runtime_for_file`: OpenVINO for an IR .xml). `path` may
    also be an open `Runner` or ONNX Runtime session: it is used as it is (its runtime,
    precision, provider, threads and streams are its own).

    threads: intra-op threads per run (0 = the runtime's default). streams: runs expected
    at once (OpenVINO compiles one CPU stream per run; ONNX Runtime shares one session).
    Raises MissingDependencyError naming the extra when the runtime is not installed,
    ConfigError for a precision the runtime or CPU does not offer, ModelLoadError for a
    missing or unreadable model.
    """
    opened = as_runner(path)
    if opened is not None:
        return opened
    path = cast("str | os.PathLike[str]", path)
    runtime = runtime or runtime_for_file(path)
    require_runtime(runtime)
    if precision not in PRECISIONS:
        raise ConfigError(
            f"infer.precision: unknown precision {precision!r} (known: {', '.join(PRECISIONS)})"
        )
    p = Path(path)
    if runtime == "onnxruntime":
        if precision in ("bf16", "fp16"):
            raise ConfigError(
                f"infer.precision = {precision!r}: onnxruntime runs fp32 or int8 here; "
                "bf16/fp16 need infer.runtime = openvino"
            )
        from vision_core.infer.session import create_session

        model = _model_for(p, runtime, precision)
        session = create_session(
            model, provider=provider, threads=threads, logger=logger, gpu_hint=gpu_hint
        )
        return OrtRunner(session, precision=precision)
    if provider != "cpu":
        raise ConfigError(
            f"infer.provider = {provider!r} is ONNX Runtime's; infer.runtime = 'openvino' runs "
            "on the CPU (set infer.provider = cpu or infer.runtime = onnxruntime)"
        )
    from vision_core.infer.openvino_runner import OpenVinoRunner

    model = _model_for(p, runtime, precision)
    return OpenVinoRunner(model, precision=precision, threads=threads, streams=streams)
