"""Errors of the LLM client (all VisionErrors; messages never carry the API key)."""

from __future__ import annotations

from vision_core.errors import VisionError


class LLMError(VisionError):
    """Base of the LLM client's errors."""


class LLMCallError(LLMError):
    """A request failed for good (non-retryable status, or retries exhausted)."""

    def __init__(self, message: str, *, status: int | None = None, attempts: int = 1) -> None:
        super().__init__(message)
        self.status = status
        self.attempts = attempts


class LLMParseError(LLMError):
    """The answer holds no usable JSON (malformed, truncated, wrong shape)."""
