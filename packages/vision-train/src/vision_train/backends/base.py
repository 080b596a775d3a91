"""The TrainBackend protocol and how a backend is found.

The backend names are spelled once, in the config schema (`train.backend`'s choices);
each package registers its backend objects under the `vision.trainers` entry points, and
a test checks that the two agree (a closed set: a new backend adds its name to the schema).
Every step that differs by backend (train, resume, read a checkpoint's names, export,
INT8 calibration) is a method here, so nothing else branches on the backend's name.
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from vision_core.config import PipelineConfig
from vision_core.config.schema import TrainBackendName
from vision_train.errors import TrainError

if TYPE_CHECKING:
    import numpy as np

    from vision_core.kernel import RunContext
    from vision_train.resume import Interrupted


def backend_names() -> tuple[str, ...]:
    """The training backends the config accepts (the schema's `train.backend` choices)."""
    return tuple(typing.get_args(TrainBackendName))


@dataclass(frozen=True, slots=True)
class Calibration:
    """How a backend's FP32 model is fed to static INT8 calibration."""

    preprocess: Callable[[Path], np.ndarray]
    options: dict[str, Any] = field(default_factory=dict)  # quantize_static_qdq keywords


@runtime_checkable
class TrainBackend(Protocol):
    name: str
    checkpoint_suffixes: tuple[str, ...]

    def __call__(self, ctx: RunContext) -> dict[str, Any]:
        """Train from the config (the kernel's entry point)."""
        ...

    def resume(self, ctx: RunContext, interrupted: Interrupted) -> dict[str, Any]:
        """Continue an interrupted run to its configured epochs."""
        ...

    def checkpoint_names(self, checkpoint: Path) -> dict[int, str]:
        """The class names a checkpoint of this backend was trained on."""
        ...

    def export_onnx(
        self, checkpoint: Path, out: Path, cfg: PipelineConfig, samples: Sequence[Path]
    ) -> dict[str, Any]:
        """Write `out` (ONNX, checked against PyTorch on `samples`); return its facts."""
        ...

    def calibration(self, cfg: PipelineConfig, fp32: Path) -> Calibration:
        """Static INT8 for this backend's exported model."""
        ...


def get_backend(name: str) -> TrainBackend:
    """The backend registered as `name` (imports its module now, not before)."""
    from vision_core.registry import KernelRegistry

    found = KernelRegistry().get("trainer", name)
    if not isinstance(found, TrainBackend):
        raise TrainError(
            f"trainer {name!r} is registered as {type(found).__name__}, not a TrainBackend "
            "(vision.trainers entry points must name a backend object)"
        )
    return found
