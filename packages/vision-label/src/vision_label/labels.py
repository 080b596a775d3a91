"""YOLO label lines, the merge rule, and the dataset files of a labeled folder.

Layout of `data.labeled_dir` (a YOLO dataset vision-train accepts)::

    labels/<sub/dirs>/<stem>.txt   one per image, mirroring the unlabeled folder
    images/<sub/dirs>/<name>       the image (a hard link where possible, else a copy)
    previews/<sub/dirs>/<stem>.jpg annotated previews (autolabel.visualize)
    classes.txt                    one class name per line, line i = class id i
    dataset.yaml                   names, and train = val = images (the whole labeled set)
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from vision_core.fsutil import atomic_write_text
from vision_core.geometry import box_iou
from vision_core.types import Detection


@dataclass(frozen=True, slots=True)
class YoloBox:
    class_id: int
    cx: float
    cy: float
    w: float
    h: float

    def xyxy(self) -> tuple[float, float, float, float]:
        return (
            self.cx - self.w / 2,
            self.cy - self.h / 2,
            self.cx + self.w / 2,
            self.cy + self.h / 2,
        )


def detection_to_box(det: Detection, width: int, height: int) -> YoloBox | None:
    """Normalised YOLO box of a pixel-space detection, clipped to the image; None if empty."""
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
    )


def format_line(box: YoloBox) -> str:
    return f"{box.class_id} {box.cx:.6f} {box.cy:.6f} {box.w:.6f} {box.h:.6f}"


def parse_line(line: str) -> YoloBox | None:
    """A YOLO line (`cls cx cy w h [conf]`), or None when it is not one."""
    parts = line.split()
    if len(parts) < 5:
        return None
    try:
        cls = int(float(parts[0]))
        cx, cy, w, h = (float(v) for v in parts[1:5])
    except ValueError:
        return None
    return YoloBox(cls, cx, cy, w, h)


def render(boxes: Iterable[YoloBox]) -> str:
    return "".join(format_line(b) + "\n" for b in boxes)


def merge(existing: str, new: Sequence[YoloBox], merge_iou: float) -> tuple[str, int]:
    """Keep `existing` byte for byte; append each new box whose IoU with every existing box
    of its class is below `merge_iou`. Returns (text, boxes added).

    IoU is computed on normalised coordinates (equal to pixel IoU: a per-axis scaling
    multiplies every area by the same factor).
    """
    old = [b for b in (parse_line(line) for line in existing.splitlines()) if b is not None]
    added: list[YoloBox] = []
    for box in new:
        same = [o.xyxy() for o in old if o.class_id == box.class_id]
        if not same or box_iou([box.xyxy()], same).max() < merge_iou:
            added.append(box)
    if not added:
        return existing, 0
    head = existing if not existing or existing.endswith("\n") else existing + "\n"
    return head + render(added), len(added)


def link_or_copy(src: Path, dst: Path) -> None:
    """Put `src` at `dst` (hard link, else copy through a temp name); no-op if present."""
    if dst.exists():
        return
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def write_dataset_files(labeled_dir: Path, names: Mapping[int, str]) -> Path:
    """classes.txt and dataset.yaml (train = val = images/); returns dataset.yaml."""
    n = max(names) + 1 if names else 0
    ordered = [names.get(i, f"class_{i}") for i in range(n)]
    atomic_write_text(labeled_dir / "classes.txt", "".join(f"{name}\n" for name in ordered))
    meta = {
        "train": "images",
        "val": "images",
        "nc": n,
        "names": dict(enumerate(ordered)),
    }
    return atomic_write_text(labeled_dir / "dataset.yaml", yaml.safe_dump(meta, sort_keys=False))
