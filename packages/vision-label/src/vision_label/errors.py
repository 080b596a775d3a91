"""vision-label's errors: one base (a VisionError), subclasses with clear messages."""

from __future__ import annotations

from vision_core.errors import VisionError


class LabelError(VisionError):
    """Base of vision-label's errors."""


class LabelConfigError(LabelError):
    """The autolabel settings cannot work (no model, no classes, overlapping dirs)."""
