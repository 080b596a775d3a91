"""A frame: one image taken from a source, with its index, time and (for files) its bytes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(slots=True)
class Frame:
    index: int
    image: np.ndarray
    ts: float  # time.time() when read
    name: str = ""  # file name (images) or "" (video/camera)
    data: bytes | None = None  # the file's encoded bytes (images), so they can be sent as-is
