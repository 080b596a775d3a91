"""vision-server errors: each one maps to an HTTP status and a JSON body naming the problem.

`kind` is the label of the `vision_server_errors_total{kind=...}` counter. The mapping to
an answer is `vision_core.web`'s: a 5xx shows its detail only when `expose_detail` is
set (load shedding); any other 5xx answers a generic text and logs the detail.
"""

from __future__ import annotations

from typing import Any

from vision_core.errors import VisionError


class ServerError(VisionError):
    """Base of vision-server's errors. A request error carries its HTTP status."""

    status_code = 500
    kind = "internal"

    def __init__(
        self,
        detail: str,
        *,
        field: str | None = None,
        retry_after: int | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.field = field
        self.retry_after = retry_after
        self.extra = dict(extra or {})
        if field is not None:
            self.extra.setdefault("field", field)

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)} if self.retry_after is not None else {}


class ServerConfigError(ServerError):
    """The server cannot start: no model, no API key, a port in use. Not an HTTP answer."""

    kind = "config"


class BadRequestError(ServerError):
    """400: the body cannot be read at all (empty, not JSON)."""

    status_code = 400
    kind = "bad_request"


class InvalidFieldError(ServerError):
    """422: a field is missing, unknown or has a bad value; `field` names it."""

    status_code = 422
    kind = "invalid_field"


class BadImageError(ServerError):
    """422: the image is not a JPEG/PNG, is truncated or cannot be decoded."""

    status_code = 422
    kind = "bad_image"


class ImageTooLargeError(ServerError):
    """413: the image has more pixels than deploy.remote.max_image_pixels."""

    status_code = 413
    kind = "image_too_large"


class UnsupportedMediaTypeError(ServerError):
    """415: the Content-Type is not JSON, image/jpeg or image/png."""

    status_code = 415
    kind = "unsupported_media_type"


class QueueFullError(ServerError):
    """503: the frame queue is full (or the server is stopping); retry after a while."""

    status_code = 503
    kind = "queue_full"
    expose_detail = True  # load shedding, not a fault: the client is told why


class InferenceFailedError(ServerError):
    """500: the model failed on a decoded image (a bug or a broken model, never bad input)."""

    status_code = 500
    kind = "inference_failed"


class NotReadyError(ServerError):
    """503: the model is not loaded yet, or the worker is stopping."""

    status_code = 503
    kind = "not_ready"
    expose_detail = True
