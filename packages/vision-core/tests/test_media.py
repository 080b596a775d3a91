"""FrameSource (images, video, camera with reconnect) and preview rendering."""

from __future__ import annotations

import time
from pathlib import Path
from typing import ClassVar

import cv2
import numpy as np
import pytest

from vision_core.errors import MediaError
from vision_core.media import FrameSource, draw_detections, list_images, read_image
from vision_core.types import Detection


def _img(value: int) -> np.ndarray:
    return np.full((24, 32, 3), value, np.uint8)


def _folder(tmp_path: Path) -> Path:
    root = tmp_path / "imgs"
    (root / "sub").mkdir(parents=True)
    cv2.imwrite(str(root / "b.png"), _img(20))
    cv2.imwrite(str(root / "a.JPG"), _img(10))
    cv2.imwrite(str(root / "sub" / "c.png"), _img(30))
    (root / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (root / "empty.png").write_bytes(b"")
    (root / "notes.txt").write_text("not an image")
    return root


def test_image_folder_sorted_recursive_and_bad_files_skipped(tmp_path: Path) -> None:
    root = _folder(tmp_path)
    seen: list[str] = []
    src = FrameSource("images", root, on_skip=lambda p, why: seen.append(p.name))
    frames = list(src)
    assert [f.name for f in frames] == ["a.JPG", "b.png", "c.png"]
    assert [f.index for f in frames] == [0, 1, 2]
    assert [int(f.image[0, 0, 0]) for f in frames] == [10, 20, 30]
    assert sorted(seen) == ["corrupt.jpg", "empty.png"]
    reasons = dict(src.skipped)
    assert "empty file" in reasons[str(root / "empty.png")]
    assert "not a decodable image" in reasons[str(root / "corrupt.jpg")]


def test_list_images_ignores_other_files(tmp_path: Path) -> None:
    names = [p.name for p in list_images(_folder(tmp_path))]
    assert "notes.txt" not in names and "c.png" in names


def test_max_frames_and_fps_limit(tmp_path: Path) -> None:
    root = _folder(tmp_path)
    assert len(list(FrameSource("images", root, max_frames=2))) == 2
    t0 = time.monotonic()
    frames = list(FrameSource("images", root, max_frames_per_sec=20))
    elapsed = time.monotonic() - t0
    assert len(frames) == 3 and elapsed >= 2 / 20 * 0.9


def test_video_file_reads_to_the_end(synth_video: Path) -> None:
    frames = list(FrameSource("video", synth_video))
    assert len(frames) == 24 and frames[0].image.shape == (180, 320, 3)


@pytest.mark.parametrize(
    ("kind", "target", "message"),
    [
        ("video", "missing.mp4", "video file not found: missing.mp4"),
        ("images", "no-such-dir", "image folder not found: no-such-dir"),
    ],
)
def test_missing_source_is_a_clear_error(kind: str, target: str, message: str) -> None:
    with pytest.raises(MediaError, match=message):
        FrameSource(kind, target)  # type: ignore[arg-type]


def test_read_image_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match=r"nope\.png: cannot read"):
        read_image(tmp_path / "nope.png")


class FlakyCapture:
    """A capture double: the 1st open fails, the 2nd gives 2 frames then drops, the 3rd gives 3."""

    script: ClassVar[list[int]] = [0, 2, 3]
    opened = 0

    def __init__(self, target: int | str) -> None:
        self.target = target
        self.left = FlakyCapture.script[min(FlakyCapture.opened, 2)]
        self.ok = FlakyCapture.opened != 0
        FlakyCapture.opened += 1

    def isOpened(self) -> bool:
        return self.ok

    def read(self) -> tuple[bool, np.ndarray | None]:
        if self.left <= 0:
            return False, None
        self.left -= 1
        return True, _img(self.left)

    def release(self) -> None:
        pass


def test_camera_that_drops_is_reopened_with_backoff() -> None:
    FlakyCapture.opened = 0
    attempts: list[tuple[int, float, str]] = []
    src = FrameSource(
        "camera",
        "0",
        max_frames=5,
        capture_factory=FlakyCapture,
        reconnect_max_backoff_sec=0.6,
        on_reconnect=lambda n, b, why: attempts.append((n, b, why)),
    )
    frames = list(src)
    assert len(frames) == 5 and [f.index for f in frames] == list(range(5))
    assert attempts == [(1, 0.5, "cannot open capture"), (2, 0.5, "capture dropped")]
    assert src.reconnects == 2


def test_preview_returns_annotated_copy() -> None:
    img = np.zeros((100, 120, 3), np.uint8)
    det = Detection(class_id=1, class_name="square", score=0.9, xyxy=(10.0, 20.0, 60.0, 80.0))
    out = draw_detections(img, [det])
    assert img.sum() == 0  # input untouched
    assert out.shape == img.shape and out[20:80, 10].sum() > 0  # box edge drawn
