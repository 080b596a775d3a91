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
from collections.abc import Mapping, Sequence
from pathlib import Path

import yaml

from vision_core.formats.yolo import YoloBox, parse_line, render
from vision_core.fsutil import atomic_write_text
from vision_core.geometry import box_iou


def merge(existing: str, new: Sequence[YoloBox], merge_iou: float) -> tuple[str, int]:
    """Keep `existing` byte for byte; append each new box whose IoU with every existing box
    of its class is below `merge_iou`. Returns (text, boxes added). An existing line that is
    not a YOLO label line raises LabelFormatError (the file is left as it is).

    IoU is computed on normalised coordinates (equal to pixel IoU: a per-axis scaling
    multiplies every area by the same factor).
    """
    old = [parse_line(line) for line in existing.splitlines() if line.strip()]
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
