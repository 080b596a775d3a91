"""vision-train errors: each names the file, line or config key at fault."""

from __future__ import annotations

from vision_core.errors import DatasetError, VisionError


class TrainError(VisionError):
    """Training could not start or failed."""


class ExportError(TrainError):
    """ONNX export, its checks, or quantization failed."""


class ClassNamesError(TrainError):
    """A checkpoint's class names are not the dataset's (the message names both lists)."""


class ResumeError(TrainError):
    """A run dir that cannot be resumed (the message says why and what to do)."""


__all__ = ["ClassNamesError", "DatasetError", "ExportError", "ResumeError", "TrainError"]
