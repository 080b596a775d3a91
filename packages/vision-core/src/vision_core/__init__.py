"""vision-core: config, logging, run kernel and registry, shared types, ONNX inference.

Light by design: importing `vision_core` pulls in neither onnxruntime nor OpenCV; the
inference (`vision_core.infer`), media and synthetic-data modules import them when used.
"""

from importlib.metadata import PackageNotFoundError, version

from vision_core.config import PipelineConfig, build_config, load_config
from vision_core.errors import (
    BackendNotFoundError,
    ConfigError,
    DatasetError,
    InferenceError,
    MediaError,
    MissingDependencyError,
    ModelLoadError,
    SecretError,
    VisionError,
)
from vision_core.kernel import RunContext, RunResult, VisionKernel
from vision_core.logging import StructuredLogger
from vision_core.registry import KernelRegistry
from vision_core.types import Detection, FrameRequest, FrameResponse, FrameTiming, StatsEvent

try:
    __version__ = version("vision-core")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = [
    "BackendNotFoundError",
    "ConfigError",
    "DatasetError",
    "Detection",
    "FrameRequest",
    "FrameResponse",
    "FrameTiming",
    "InferenceError",
    "KernelRegistry",
    "MediaError",
    "MissingDependencyError",
    "ModelLoadError",
    "PipelineConfig",
    "RunContext",
    "RunResult",
    "SecretError",
    "StatsEvent",
    "StructuredLogger",
    "VisionError",
    "VisionKernel",
    "__version__",
    "build_config",
    "load_config",
]
