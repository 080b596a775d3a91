"""Header probing (before any decoding) and decoding of frames."""

from __future__ import annotations

import struct
import zlib
from typing import Any

import cv2
import numpy as np
import pytest

from vision_server.errors import BadImageError, ImageTooLargeError
from vision_server.images import MIN_IMAGE_SIDE, check_pixels, decode, probe


def _img(h: int = 48, w: int = 64) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def _enc(image: np.ndarray, ext: str, *params: int) -> bytes:
    ok, buf = cv2.imencode(ext, image, list(params))
    assert ok
    return buf.tobytes()


def test_probe_reads_sizes_from_headers() -> None:
    jpg = _enc(_img(48, 64), ".jpg")
    png = _enc(_img(30, 20), ".png")
    progressive = _enc(_img(33, 17), ".jpg", cv2.IMWRITE_JPEG_PROGRESSIVE, 1)
    assert (probe(jpg).format, probe(jpg).width, probe(jpg).height) == ("jpeg", 64, 48)
    assert (probe(png).format, probe(png).width, probe(png).height) == ("png", 20, 30)
    assert (probe(progressive).width, probe(progressive).height) == (17, 33)


def test_huge_images_are_refused_from_the_header_alone(kit: Any) -> None:
    for data in (kit.huge_png(20000, 20000), kit.huge_jpeg(20000, 20000)):
        assert len(data) < 1000
        header = probe(data)
        assert (header.width, header.height) == (20000, 20000)
        with pytest.raises(ImageTooLargeError, match="20000x20000 = 400000000 pixels"):
            check_pixels(header, 40_000_000)
        with pytest.raises(ImageTooLargeError, match="max_image_pixels = 40000000"):
            decode(data, 40_000_000)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "not a JPEG or PNG"),
        (b"GIF89a" + b"\x00" * 20, "looks like GIF"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "looks like WebP"),
        (b'{"a": 1}', "looks like text"),
        (_enc(_img(), ".jpg")[:300], "JPEG is truncated"),
        (_enc(_img(), ".jpg")[:-200], "no end-of-image marker"),
        (_enc(_img(), ".png")[:-30], "PNG is truncated"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 8, "without an IHDR"),
        (b"\xff\xd8\xff\xd9", "ends before its image data"),
        (b"\xff\xd8\x00\x00\x00\x00", "no marker at byte 2"),
    ],
)
def test_bad_data_is_refused_with_a_reason(data: bytes, message: str) -> None:
    with pytest.raises(BadImageError, match=message):
        decode(data, 10**8)


def test_corrupt_data_inside_a_whole_file_is_refused() -> None:
    png = bytearray(_enc(_img(), ".png"))
    idat = png.find(b"IDAT")
    png[idat + 10 : idat + 60] = b"\x00" * 50  # bad zlib stream, IEND still present
    with pytest.raises(BadImageError, match="corrupt"):
        decode(bytes(png), 10**8)


def test_decode_converts_gray_and_16_bit_to_bgr() -> None:
    bgr = _img()
    gray16 = (np.arange(48 * 64, dtype=np.uint16).reshape(48, 64)) * 20
    out16 = decode(_enc(gray16, ".png"), 10**8)
    assert out16.shape == (48, 64, 3) and out16.dtype == np.uint8
    out = decode(_enc(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY), ".png"), 10**8)
    assert out.shape == (48, 64, 3)
    smallest = decode(_enc(bgr[:MIN_IMAGE_SIDE, :MIN_IMAGE_SIDE], ".png"), 10**8)
    assert smallest.shape == (MIN_IMAGE_SIDE, MIN_IMAGE_SIDE, 3)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])  # RGBA, 8 and 16 bits
def test_png_with_alpha_is_refused(dtype: type) -> None:
    img = np.full((48, 64, 4), 90, dtype)
    with pytest.raises(BadImageError, match="alpha channel"):
        decode(_enc(img, ".png"), 10**8)


@pytest.mark.parametrize("shape", [(1, 1, 3), (7, 64, 3), (64, 7, 3)])
@pytest.mark.parametrize("ext", [".png", ".jpg"])
def test_frames_under_the_minimum_side_are_refused(shape: tuple[int, int, int], ext: str) -> None:
    with pytest.raises(BadImageError, match=f"at least {MIN_IMAGE_SIDE} pixels"):
        decode(_enc(np.zeros(shape, np.uint8), ext), 10**8)


def test_zero_sized_header_is_refused() -> None:
    ihdr = struct.pack(">IIBBBBB", 0, 10, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", 13) + b"IHDR" + ihdr
    chunk += struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    data = b"\x89PNG\r\n\x1a\n" + chunk + b"\x00\x00\x00\x00IEND\xaeB`\x82"
    with pytest.raises(BadImageError, match="empty image"):
        decode(data, 10**8)
