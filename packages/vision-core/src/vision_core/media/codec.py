"""Encoded images: read a file into a Frame (keeping its bytes), encode JPEG, tell the type.

One JPEG encoder for the code base (the edge's stream and llm engines, the LLM client,
annotated previews).
"""

from __future__ import annotations

import time
from pathlib import Path

from vision_core.errors import MediaError, require

require("cv2", "vision-core[infer]", "image encoding")
import cv2  # noqa: E402
import numpy as np  # noqa: E402

from vision_core.media.frame import Frame  # noqa: E402

__all__ = ["encode_jpeg", "image_mime", "png_has_alpha", "read_frame", "read_image"]

_PNG = b"\x89PNG\r\n\x1a\n"


def encode_jpeg(image: np.ndarray, quality: int = 90) -> bytes:
    """JPEG bytes of a BGR (or grayscale) uint8 image; MediaError when OpenCV refuses it."""
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise MediaError(f"cannot encode a {getattr(image, 'shape', '?')} image as JPEG")
    return bytes(buf)


def image_mime(data: bytes | None) -> str | None:
    """ "image/jpeg" or "image/png" from the bytes' signature, else None."""
    if not data:
        return None
    if data.startswith(b"\xff\xd8"):
        return "image/jpeg"
    if data.startswith(_PNG):
        return "image/png"
    return None


def png_has_alpha(data: bytes) -> bool:
    """A PNG whose colour type (4: grey + alpha, 6: RGBA) carries an alpha channel."""
    return data.startswith(_PNG) and len(data) > 25 and data[25] in (4, 6)


def read_frame(path: str | Path, index: int = 0) -> Frame:
    """An image file as a Frame: decoded BGR pixels plus the file's own bytes (so it can be
    sent on unchanged). MediaError naming the file and the reason otherwise."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise MediaError(f"{p}: cannot read ({exc.strerror or exc})") from None
    if not data:
        raise MediaError(f"{p}: empty file (0 bytes)")
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise MediaError(f"{p}: not a decodable image (corrupt or unsupported format)")
    return Frame(index, img, time.time(), str(p.name), data)


def read_image(path: str | Path) -> np.ndarray:
    """Read an image as BGR uint8; MediaError naming the file and the reason otherwise."""
    return read_frame(path).image
