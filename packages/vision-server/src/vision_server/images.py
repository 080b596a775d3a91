"""Frame bytes -> a BGR image, refusing what must not be decoded.

`probe` reads the format and the dimensions from the header alone (PNG IHDR, JPEG SOFn),
so an image with too many pixels is refused BEFORE any pixel is decoded (a 20000 x 20000
PNG of a few kilobytes would otherwise take 1.2 GB). It also refuses truncated files,
which OpenCV would half-decode and pad with grey: a JPEG must end with an EOI marker after
its scan data, a PNG must hold its IEND chunk. `decode` then decodes with OpenCV to BGR
uint8 (grayscale and 16-bit PNGs are converted).

Two kinds of valid files are refused on purpose (422, as issue #5 asks): a PNG with an
alpha channel (colour type 4 or 6), because what the transparent pixels should look like
is the client's decision (composite on black? white? the camera never sends alpha), and a
frame with a side under `MIN_IMAGE_SIDE` pixels, which holds nothing a detector can find
and is almost always a client bug (a thumbnail, a wrong crop).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from vision_server.errors import BadImageError, ImageTooLargeError

__all__ = ["MIN_IMAGE_SIDE", "ImageHeader", "decode", "probe"]

MIN_IMAGE_SIDE = 8  # pixels; smaller frames are refused (see the module docstring)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_STANDALONE = {0x01, 0xD0, 0xD1, 0xD2, 0xD3, 0xD4, 0xD5, 0xD6, 0xD7}
_OTHER_FORMATS = (
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"\x00\x00\x00\x0cjP  ", "JPEG 2000"),
)


@dataclass(frozen=True, slots=True)
class ImageHeader:
    format: Literal["jpeg", "png"]
    width: int
    height: int
    alpha: bool = False

    @property
    def pixels(self) -> int:
        return self.width * self.height


def _what(data: bytes) -> str:
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WebP"
    for magic, name in _OTHER_FORMATS:
        if data.startswith(magic):
            return name
    if data[:1] in (b"{", b"[", b"<"):
        return "text"
    return "unknown data"


def probe(data: bytes, *, where: str = "image") -> ImageHeader:
    """Format and size from the header; BadImageError for anything but a whole JPEG/PNG."""
    if data.startswith(PNG_SIGNATURE):
        return _probe_png(data, where)
    if data.startswith(b"\xff\xd8"):
        return _probe_jpeg(data, where)
    raise BadImageError(
        f"{where} is not a JPEG or PNG image (looks like {_what(data)}, "
        f"first bytes {data[:8].hex(' ') or 'none'}); send JPEG or PNG",
        field=where if where != "body" else None,
    )


def _probe_png(data: bytes, where: str) -> ImageHeader:
    if len(data) < 33 or data[12:16] != b"IHDR":
        raise BadImageError(f"{where}: PNG without an IHDR header (truncated or corrupt)")
    width, height = struct.unpack(">II", data[16:24])
    if data.rfind(b"IEND", 33) < 0:
        raise BadImageError(f"{where}: PNG is truncated (no IEND chunk)")
    colour_type = data[25]
    return ImageHeader("png", width, height, alpha=colour_type in (4, 6))


def _probe_jpeg(data: bytes, where: str) -> ImageHeader:
    i, n = 2, len(data)
    size: tuple[int, int] | None = None
    while True:
        while i < n and data[i] == 0xFF and i + 1 < n and data[i + 1] == 0xFF:
            i += 1  # fill bytes
        if i + 1 >= n:
            raise BadImageError(f"{where}: JPEG is truncated (ends inside its headers)")
        if data[i] != 0xFF:
            raise BadImageError(f"{where}: JPEG is corrupt (no marker at byte {i})")
        marker = data[i + 1]
        if marker in _STANDALONE:
            i += 2
            continue
        if marker == 0xD9:
            raise BadImageError(f"{where}: JPEG ends before its image data")
        if i + 4 > n:
            raise BadImageError(f"{where}: JPEG is truncated (ends inside its headers)")
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        if length < 2:
            raise BadImageError(f"{where}: JPEG is corrupt (segment length {length})")
        if marker in _SOF:
            if i + 9 > n:
                raise BadImageError(f"{where}: JPEG is truncated (ends inside its frame header)")
            height, width = struct.unpack(">HH", data[i + 5 : i + 9])
            size = (width, height)
        if marker == 0xDA:  # start of scan: entropy-coded data follows
            if size is None:
                raise BadImageError(f"{where}: JPEG has no frame header (SOF) before its data")
            if data.rfind(b"\xff\xd9", i + 2) < 0:
                raise BadImageError(f"{where}: JPEG is truncated (no end-of-image marker)")
            width, height = size
            if width == 0 or height == 0:
                raise BadImageError(f"{where}: JPEG declares a {width}x{height} image")
            return ImageHeader("jpeg", width, height)
        i += 2 + length


def check_pixels(header: ImageHeader, max_pixels: int, *, where: str = "image") -> None:
    """ImageTooLargeError above `max_pixels`; BadImageError for an empty size."""
    if header.width == 0 or header.height == 0:
        raise BadImageError(f"{where}: {header.format.upper()} declares an empty image")
    if min(header.width, header.height) < MIN_IMAGE_SIDE:
        raise BadImageError(
            f"{where} is {header.width}x{header.height}: too small to detect anything "
            f"(each side must be at least {MIN_IMAGE_SIDE} pixels)",
            extra={"width": header.width, "height": header.height, "min_side": MIN_IMAGE_SIDE},
        )
    if header.alpha:
        raise BadImageError(
            f"{where}: PNG with an alpha channel (transparency) is not accepted; "
            "send an opaque RGB or grayscale PNG, or a JPEG"
        )
    if header.pixels > max_pixels:
        raise ImageTooLargeError(
            f"{where} is {header.width}x{header.height} = {header.pixels} pixels, above "
            f"deploy.remote.max_image_pixels = {max_pixels}; send a smaller frame",
            extra={"width": header.width, "height": header.height, "max_pixels": max_pixels},
        )


def decode(data: bytes, max_pixels: int, *, where: str = "image") -> np.ndarray:
    """A BGR uint8 (H, W, 3) image from JPEG/PNG bytes, checked before decoding."""
    header = probe(data, where=where)
    check_pixels(header, max_pixels, where=where)
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None or image.ndim != 3 or image.shape[2] != 3:
        raise BadImageError(f"{where}: the {header.format.upper()} data is corrupt (cannot decode)")
    h, w = image.shape[:2]
    if (w, h) not in ((header.width, header.height), (header.height, header.width)):
        raise BadImageError(
            f"{where}: decoded {w}x{h} but the header says {header.width}x{header.height}"
        )
    return image
