"""FrameSource: BGR frames from a camera (index or URL), a video file or an image folder.

- images: sorted recursively by relative path; an unreadable image is reported through
  `on_skip` and in `skipped`, then passed over;
- video: ends cleanly at the end of the file; a missing file is a MediaError;
- camera: a capture that fails or drops is reopened with capped exponential backoff,
  forever (each attempt reported through `on_reconnect`), until `max_frames` or `stop()`.
`max_frames_per_sec` throttles by sleeping; `max_frames` > 0 stops after that many frames.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from vision_core.errors import MediaError, require

require("cv2", "vision-core[infer]", "frame sources")
import cv2  # noqa: E402

from vision_core.media.codec import read_frame  # noqa: E402
from vision_core.media.frame import Frame  # noqa: E402
from vision_core.net.retry import Backoff  # noqa: E402

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp"})
SourceKind = Literal["camera", "video", "images"]


def list_images(folder: str | Path, *, recursive: bool = True) -> list[Path]:
    """Image files under `folder` (any-case extensions), sorted by relative path."""
    root = Path(folder)
    if not root.is_dir():
        raise MediaError(f"image folder not found: {root}")
    it = root.rglob("*") if recursive else root.iterdir()
    return sorted(
        (p for p in it if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS),
        key=lambda p: p.relative_to(root).as_posix(),
    )


CaptureFactory = Callable[[int | str], Any]


# a network camera that stops sending makes OpenCV's read wait this long before it gives up
# (its FFmpeg default is 30 s): the reopen loop then takes over
CAMERA_TIMEOUT_MSEC = 5000


def _capture_fps(cap: Any) -> float:
    try:
        fps = float(cap.get(cv2.CAP_PROP_FPS))
    except Exception:  # a capture double without get(): unknown
        return 0.0
    return fps if 0.0 < fps < 1000.0 else 0.0


def _default_capture(target: int | str) -> Any:
    if isinstance(target, str) and "://" in target:
        params = [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
            CAMERA_TIMEOUT_MSEC,
            cv2.CAP_PROP_READ_TIMEOUT_MSEC,
            CAMERA_TIMEOUT_MSEC,
        ]
        return cv2.VideoCapture(target, cv2.CAP_FFMPEG, params)
    return cv2.VideoCapture(target)


@dataclass
class FrameSource:
    kind: SourceKind
    target: str | Path
    max_frames_per_sec: float = 0.0
    max_frames: int = 0
    reconnect_max_backoff_sec: float = 30.0
    on_skip: Callable[[Path, str], None] | None = None
    on_reconnect: Callable[[int, float, str], None] | None = None
    capture_factory: CaptureFactory = _default_capture
    skipped: list[tuple[str, str]] = field(default_factory=list)
    reconnects: int = 0
    fps: float = 0.0  # the video's or camera's own frame rate, once opened (0 = unknown)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        if self.kind == "video" and not Path(self.target).is_file():
            raise MediaError(f"video file not found: {self.target}")
        if self.kind == "images":
            self._files = list_images(self.target)
        if self.kind not in ("camera", "video", "images"):
            raise MediaError(f"unknown source kind {self.kind!r}; expected camera, video or images")

    def stop(self) -> None:
        """Make the iterator end after the current frame (thread-safe)."""
        self._stop.set()

    @property
    def display_target(self) -> str:
        """The target as it may be shown: a camera URL's password blanked."""
        from vision_core.secrets import redact_url

        return redact_url(str(self.target))

    @property
    def camera_target(self) -> int | str:
        t = str(self.target).strip()
        return int(t) if t.isdigit() else t

    def __iter__(self) -> Iterator[Frame]:
        period = 1.0 / self.max_frames_per_sec if self.max_frames_per_sec > 0 else 0.0
        next_at = time.monotonic()
        for count, frame in enumerate(self._raw(), start=1):
            if period:
                now = time.monotonic()
                if next_at > now and self._stop.wait(next_at - now):
                    return
                next_at = max(next_at + period, time.monotonic() - period)
            frame.index = count - 1
            yield frame
            if (self.max_frames and count >= self.max_frames) or self._stop.is_set():
                return

    def _raw(self) -> Iterator[Frame]:
        if self.kind == "images":
            yield from self._images()
        elif self.kind == "video":
            yield from self._video()
        else:
            yield from self._camera()

    def _images(self) -> Iterator[Frame]:
        for path in self._files:
            try:
                frame = read_frame(path)
            except MediaError as exc:
                self.skipped.append((str(path), str(exc)))
                if self.on_skip:
                    self.on_skip(path, str(exc))
                continue
            yield frame

    def _video(self) -> Iterator[Frame]:
        cap = self.capture_factory(str(self.target))
        try:
            if not cap.isOpened():
                raise MediaError(
                    f"cannot open video {self.target} (unsupported codec or corrupt file)"
                )
            self.fps = _capture_fps(cap)
            while not self._stop.is_set():
                ok, img = cap.read()
                if not ok or img is None:
                    return
                yield Frame(0, img, time.time())
        finally:
            cap.release()

    def _camera(self) -> Iterator[Frame]:
        backoff = Backoff(0.5, self.reconnect_max_backoff_sec, jitter=0.0)
        while not self._stop.is_set():
            cap = self.capture_factory(self.camera_target)
            got_any = False
            try:
                if cap.isOpened():
                    self.fps = _capture_fps(cap)
                    while not self._stop.is_set():
                        ok, img = cap.read()
                        if not ok or img is None:
                            break
                        got_any = True
                        backoff.reset()
                        yield Frame(0, img, time.time())
            finally:
                cap.release()
            if self._stop.is_set():
                return
            self.reconnects += 1
            reason = "capture dropped" if got_any else "cannot open capture"
            delay = backoff.next()
            if self.on_reconnect:
                self.on_reconnect(self.reconnects, delay, reason)
            if self._stop.wait(delay):
                return
