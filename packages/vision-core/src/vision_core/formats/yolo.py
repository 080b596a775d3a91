"""YOLO detection labels: one text file per image, one object per line.

    class cx cy w h [score]

`class` an integer id >= 0 (below the number of classes when that is known); `cx cy w h`
the box centre and size as fractions of the image (0..1; up to 1% outside is tolerated, as
rounding leaves it); an optional 6th field, the score in 0..1, is what a model's
predictions carry (autolabel with scores, `vision-label eval`); training data has none.
Blank lines are skipped. Every reader of the code base (training's dataset check, mAP
evaluation, the label merge, the labeller's evaluation) parses lines here, with this one
rule, and names the file and line of a bad one.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from vision_core.errors import LabelFormatError

if TYPE_CHECKING:
    import numpy as np

    from vision_core.types import Detection

__all__ = [
    "LabelFormatError",
    "YoloBox",
    "boxes_to_arrays",
    "check_label_file",
    "from_detection",
    "label_path_for",
    "parse_line",
    "read_label_file",
    "render",
]

_SLACK = 0.01  # normalised coordinates may stray this far outside 0..1 (rounding)


@dataclass(frozen=True, slots=True)
class YoloBox:
    class_id: int
    cx: float
    cy: float
    w: float
    h: float
    score: float | None = None

    def xyxy(self) -> tuple[float, float, float, float]:
        """The box as normalised (x1, y1, x2, y2)."""
        return (
            self.cx - self.w / 2,
            self.cy - self.h / 2,
            self.cx + self.w / 2,
            self.cy + self.h / 2,
        )

    def line(self) -> str:
        """The label line (6 decimals; the score is not written: labels are truth)."""
        return f"{self.class_id} {self.cx:.6f} {self.cy:.6f} {self.w:.6f} {self.h:.6f}"


def parse_line(line: str, nc: int | None = None) -> YoloBox:
    """One label line as a YoloBox; LabelFormatError saying what is wrong with it."""
    fields = line.split()
    if len(fields) not in (5, 6):
        raise LabelFormatError(
            f"expected 5 fields (class cx cy w h), got {len(fields)}: {line.strip()[:80]!r}"
        )
    try:
        cls = int(fields[0])
    except ValueError:
        raise LabelFormatError(f"class id must be an integer, got {fields[0][:20]!r}") from None
    if cls < 0 or (nc is not None and cls >= nc):
        known = f" (dataset has {nc} classes: 0..{nc - 1})" if nc is not None else ""
        raise LabelFormatError(f"class id {cls} out of range{known}")
    try:
        values = [float(v) for v in fields[1:]]
    except ValueError:
        raise LabelFormatError(
            f"cx cy w h must be numbers, got {' '.join(fields[1:5])[:60]!r}"
        ) from None
    cx, cy, w, h = values[:4]
    if (
        not all(math.isfinite(v) and -_SLACK <= v <= 1 + _SLACK for v in (cx, cy, w, h))
        or w <= 0
        or h <= 0
    ):
        raise LabelFormatError(
            f"cx cy w h must be normalised to 0..1 with w, h > 0, got {cx} {cy} {w} {h}"
        )
    score = values[4] if len(values) == 5 else None
    if score is not None and not 0.0 <= score <= 1.0:
        raise LabelFormatError(f"score must be in 0..1, got {score}")
    return YoloBox(cls, cx, cy, w, h, score)


def _lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise LabelFormatError(f"{path}: unreadable label file ({exc})") from None


def read_label_file(path: str | Path, nc: int | None = None) -> list[YoloBox]:
    """Every box of a label file; a missing file is an image with no objects.

    LabelFormatError naming the file and line at the first bad line.
    """
    p = Path(path)
    if not p.exists():
        return []
    boxes = []
    for no, line in enumerate(_lines(p), start=1):
        if not line.strip():
            continue
        try:
            boxes.append(parse_line(line, nc))
        except LabelFormatError as exc:
            raise LabelFormatError(f"{p} line {no}: {exc}") from None
    return boxes


def check_label_file(path: Path, nc: int, problems: list[str], *, scores: bool = False) -> int:
    """Append one message per bad line (`<file> line <n>: ...`) to `problems`; return the
    number of good lines. `scores=False` (training data): a 6th field is a problem too."""
    try:
        lines = _lines(path)
    except LabelFormatError as exc:
        problems.append(str(exc))
        return 0
    good = 0
    for no, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            box = parse_line(line, nc)
            if box.score is not None and not scores:
                raise LabelFormatError(
                    "expected 5 fields (class cx cy w h), got 6: a score column belongs to "
                    "predictions, not training labels"
                )
        except LabelFormatError as exc:
            problems.append(f"{path} line {no}: {exc}")
            continue
        good += 1
    return good


def render(boxes: Iterable[YoloBox]) -> str:
    """A label file's text: one line per box."""
    return "".join(b.line() + "\n" for b in boxes)


def from_detection(det: Detection, width: int, height: int) -> YoloBox | None:
    """The normalised box of a pixel-space detection, clipped to the image; None if empty."""
    x1, y1, x2, y2 = det.xyxy
    x1, x2 = (min(max(v, 0.0), float(width)) for v in (x1, x2))
    y1, y2 = (min(max(v, 0.0), float(height)) for v in (y1, y2))
    if x2 - x1 <= 0 or y2 - y1 <= 0:
        return None
    return YoloBox(
        det.class_id,
        (x1 + x2) / 2 / width,
        (y1 + y2) / 2 / height,
        (x2 - x1) / width,
        (y2 - y1) / height,
        det.score,
    )


def boxes_to_arrays(
    boxes: Sequence[YoloBox], width: float = 1.0, height: float = 1.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(xyxy scaled by width/height, scores (1 where a box has none), class ids)."""
    import numpy as np

    if not boxes:
        return np.zeros((0, 4)), np.zeros(0), np.zeros(0, np.int64)
    xyxy = np.array([b.xyxy() for b in boxes], np.float64) * [width, height, width, height]
    scores = np.array([1.0 if b.score is None else b.score for b in boxes], np.float64)
    cls = np.array([b.class_id for b in boxes], np.int64)
    return xyxy, scores, cls


def label_path_for(image: Path) -> Path:
    """ultralytics' rule: the last `images` path component becomes `labels`, suffix .txt."""
    parts = list(image.parts)
    for i in range(len(parts) - 1, -1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            break
    return Path(*parts).with_suffix(".txt")
