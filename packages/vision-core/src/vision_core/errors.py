"""The one error family of vision-core; every package subclasses `VisionError`.

A message says what was wrong, where (key path, file, field) and, where it helps, what
to do about it.
"""

from __future__ import annotations


class VisionError(Exception):
    """Base class of every error raised on purpose by a vision package."""


class ConfigError(VisionError):
    """The pipeline config is invalid. `problems` holds one line per bad key."""

    def __init__(self, problems: list[str] | str, *, source: str | None = None) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        self.source = source
        head = f"invalid config {source}" if source else "invalid config"
        if len(self.problems) == 1:
            msg = f"{head}: {self.problems[0]}"
        else:
            msg = head + ":\n" + "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(msg)


class BackendNotFoundError(VisionError):
    """No backend of that kind is registered under that name."""


class MissingDependencyError(VisionError):
    """An optional dependency is not installed; the message says what to install."""

    def __init__(self, module: str, install: str, purpose: str = "") -> None:
        self.module = module
        self.install = install
        what = f" (needed for {purpose})" if purpose else ""
        super().__init__(
            f"python module '{module}' is not installed{what}: pip install \"{install}\""
        )


class ModelLoadError(VisionError):
    """A model file is missing, is not ONNX, or has an output layout we do not know."""


class InferenceError(VisionError):
    """Inference failed on an input (bad image, wrong shape)."""


class MediaError(VisionError):
    """A frame source could not be opened or an image could not be read."""


class DatasetError(VisionError):
    """A dataset on disk is malformed; the message names the file and line."""


class LabelFormatError(DatasetError):
    """A label file or line that is not a YOLO detection label (the message says where)."""


class SecretError(VisionError):
    """A secret's environment variable is missing. Never carries the secret itself."""


def require(module: str, install: str, purpose: str = "") -> None:
    """Raise MissingDependencyError unless `module` can be imported."""
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise MissingDependencyError(module, install, purpose)


class FieldBoundsError(VisionError, ValueError):
    """A value crossing a boundary is outside what every reader can hold; `field` names it.

    Raised by the bounds checks of `vision_core.types` (a timestamp too far from now, ...)
    where a msgspec constraint cannot say it; servers answer it with 422.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
