"""vision-train errors: each names the file, line or config key at fault."""

from __future__ import annotations

from vision_core.errors import DatasetError, VisionError


class TrainError(VisionError):
    """Training could not start or failed."""


class ExportError(TrainError):
    """ONNX export, its checks, or quantization failed."""


__all__ = ["DatasetError", "ExportError", "TrainError"]
