"""A frame request body -> a decoded image plus its metadata, or a 4xx naming the problem.

Two ways to send a frame to `POST /api/v1/frame`:

- `Content-Type: application/json`: a `FrameRequest` (image_b64, source_id, frame_index,
  ts_utc). Unknown fields are refused (422 naming the field), like missing ones.
- `Content-Type: image/jpeg` or `image/png`: the raw image bytes (a third smaller than
  base64, and no JSON to parse), the metadata in headers `X-Source-Id`, `X-Frame-Index`,
  `X-Ts-Utc` or in query parameters `source_id`, `frame_index`, `ts_utc` (a header wins).

`prepare` runs in a decode thread (JSON parsing, base64 and image decoding of a large
frame would otherwise stall the event loop).
"""

from __future__ import annotations

import base64
import binascii
import re
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

import msgspec
import numpy as np

from vision_core.errors import FieldBoundsError
from vision_core.types import (
    AwareDatetime,
    FrameIndex,
    FrameRequest,
    Name,
    check_timestamp,
    describe_validation_error,
)
from vision_server import images
from vision_server.errors import (
    BadImageError,
    BadRequestError,
    InvalidFieldError,
    UnsupportedMediaTypeError,
)

__all__ = ["FrameMetaIn", "MediaKind", "Prepared", "media_kind", "prepare"]

MediaKind = Literal["json", "image"]
IMAGE_TYPES = ("image/jpeg", "image/png")
ACCEPTED = "application/json (a FrameRequest), image/jpeg or image/png (raw bytes)"
_FIELD = re.compile(r"(?:field `(?P<name>[^`]+)`|at `\$\.(?P<path>[^`]+)`)")
_json_decoder = msgspec.json.Decoder(FrameRequest)


class FrameMetaIn(msgspec.Struct, forbid_unknown_fields=True):
    """The metadata of a raw-image request (headers or query), validated like FrameRequest."""

    source_id: Name
    frame_index: FrameIndex = 0
    ts_utc: AwareDatetime | None = None


@dataclass(frozen=True, slots=True)
class Prepared:
    image: np.ndarray
    source_id: str
    frame_index: int
    ts_utc: datetime | None
    decode_ms: float


def media_kind(content_type: str | None) -> MediaKind:
    """ "json" or "image" from a Content-Type header; 415 for anything else."""
    mime = (content_type or "").split(";", 1)[0].strip().lower()
    if mime == "application/json" or (mime.startswith("application/") and mime.endswith("+json")):
        return "json"
    if mime in IMAGE_TYPES:
        return "image"
    got = f"Content-Type {mime!r}" if mime else "no Content-Type"
    raise UnsupportedMediaTypeError(f"{got}: send {ACCEPTED}")


def _field_of(message: str) -> str | None:
    m = _FIELD.search(message)
    if m is None:
        return None
    return m["name"] or (m["path"] or "").split(".", 1)[0].split("[", 1)[0] or None


def _invalid(exc: msgspec.ValidationError, what: str) -> InvalidFieldError:
    message, where = describe_validation_error(exc)
    text = f"{message} - at `{where}`" if where != "$" else message
    return InvalidFieldError(f"invalid {what}: {text}", field=_field_of(str(exc)))


def _b64(text: str) -> bytes:
    if text.startswith("data:") and "," in text[:200]:  # a data URL: data:image/jpeg;base64,...
        text = text.split(",", 1)[1]
    if any(c in text for c in " \r\n\t"):  # MIME-style line breaks
        text = "".join(text.split())
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidFieldError(
            f"image_b64 is not valid base64 ({exc})", field="image_b64"
        ) from None
    if not data:
        raise InvalidFieldError("image_b64 decodes to no bytes", field="image_b64")
    return data


def parse_json(body: bytes) -> FrameRequest:
    try:
        return _json_decoder.decode(body)
    except msgspec.ValidationError as exc:
        raise _invalid(exc, "FrameRequest") from None
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise BadRequestError(f"body is not valid JSON: {exc}") from None


def parse_meta(raw: dict[str, str | None]) -> FrameMetaIn:
    given = {k: v for k, v in raw.items() if v is not None}
    if "frame_index" in given:
        try:
            given["frame_index"] = int(str(given["frame_index"]).strip())  # type: ignore[assignment]
        except ValueError:
            raise InvalidFieldError(
                f"frame_index: expected an integer >= 0, got {given['frame_index']!r}",
                field="frame_index",
            ) from None
    if "source_id" not in given:
        raise InvalidFieldError(
            "source_id is missing: a raw image body takes it from the X-Source-Id header or "
            "the source_id query parameter",
            field="source_id",
        )
    try:
        return msgspec.convert(given, FrameMetaIn, strict=False)
    except msgspec.ValidationError as exc:
        raise _invalid(exc, "frame metadata") from None
    except UnicodeError:  # a lone surrogate (found by the fuzz test)
        raise InvalidFieldError(
            "frame metadata is not valid text (a lone surrogate)", field="source_id"
        ) from None


def check_ts(ts_utc: datetime | None, max_skew: timedelta) -> None:
    """422 for a ts_utc further from now than stats.max_ts_skew_days: the server passes it
    on in its StatsEvent, which vision-stats would refuse."""
    if ts_utc is None:
        return
    try:
        check_timestamp(ts_utc, field="ts_utc", max_skew=max_skew)
    except FieldBoundsError as exc:
        raise InvalidFieldError(f"invalid ts_utc: {exc.message}", field="ts_utc") from None


def prepare(
    kind: MediaKind,
    body: bytes,
    raw_meta: dict[str, str | None],
    max_pixels: int,
    max_skew: timedelta = timedelta(days=3650),
) -> Prepared:
    """Parse, check and decode one frame (in a decode thread)."""
    t0 = time.perf_counter()
    if not body:
        raise BadRequestError(f"request body is empty: send {ACCEPTED}")
    if kind == "json":
        req = parse_json(body)
        data = _b64(req.image_b64)
        source_id, frame_index, ts_utc = req.source_id, req.frame_index, req.ts_utc
        where = "image_b64"
    else:
        meta = parse_meta(raw_meta)
        data = body
        source_id, frame_index, ts_utc = meta.source_id, meta.frame_index, meta.ts_utc
        where = "body"
    check_ts(ts_utc, max_skew)
    try:
        image = images.decode(data, max_pixels, where=where)
    except BadImageError as exc:
        if kind == "json" and exc.field is None:
            exc.field = "image_b64"
            exc.extra.setdefault("field", "image_b64")
        raise
    return Prepared(image, source_id, frame_index, ts_utc, (time.perf_counter() - t0) * 1000.0)
