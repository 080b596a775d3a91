"""The labeling loop both backends share: scan, conflicts, overlap, atomic writes, counts.

Work is split in two stages. `stage1(path)` runs in a thread pool ahead of the main loop
(decoding for the model backend; decode + the LLM call for the llm backend), `stage2`
runs in order on the main thread (the ONNX inference for the model backend), so decoding
overlaps inference. Each label file is written atomically (temp file + rename), so a run
killed at any point leaves whole files only, and a rerun with `skip` finishes the rest.
"""

from __future__ import annotations

import sys
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import numpy as np

from vision_core.errors import VisionError
from vision_core.fsutil import atomic_write_bytes, atomic_write_text
from vision_core.kernel import RunContext
from vision_core.media import draw_detections, list_images
from vision_core.types import Detection
from vision_label.errors import LabelConfigError
from vision_label.labels import (
    detection_to_box,
    link_or_copy,
    merge,
    render,
    write_dataset_files,
)

MAX_LISTED_FAILURES = 100

Stage1 = Callable[[Path], Any]
Stage2 = Callable[[Any], tuple[np.ndarray, list[Detection]]]


@dataclass
class LabelCounts:
    seen: int = 0
    labeled: int = 0  # label files written (new, overwritten or merged)
    new: int = 0
    skipped: int = 0
    overwritten: int = 0
    merged: int = 0  # existing files that got new boxes
    merge_unchanged: int = 0  # existing files where every new box overlapped
    boxes_added_by_merge: int = 0
    empty: int = 0  # images with no detection (an empty label file: a negative example)
    failed: int = 0
    failures: list[dict[str, str]] = field(default_factory=list)
    per_class: Counter[str] = field(default_factory=Counter)
    processed: int = 0  # images run through a backend (not skipped)

    def as_metrics(self, elapsed: float) -> dict[str, Any]:
        return {
            "images_seen": self.seen,
            "labeled": self.labeled,
            "new": self.new,
            "skipped": self.skipped,
            "overwritten": self.overwritten,
            "merged": self.merged,
            "merge_unchanged": self.merge_unchanged,
            "boxes_added_by_merge": self.boxes_added_by_merge,
            "empty": self.empty,
            "failed": self.failed,
            "failures": self.failures[:MAX_LISTED_FAILURES],
            "detections_total": sum(self.per_class.values()),
            "detections_per_class": dict(sorted(self.per_class.items())),
            "elapsed_s": round(elapsed, 3),
            "images_per_sec": round(self.processed / elapsed, 3) if elapsed > 0 else 0.0,
        }


@dataclass(frozen=True)
class Layout:
    unlabeled: Path
    labeled: Path

    @property
    def labels(self) -> Path:
        return self.labeled / "labels"

    @property
    def images(self) -> Path:
        return self.labeled / "images"

    @property
    def previews(self) -> Path:
        return self.labeled / "previews"

    def label_for(self, rel: Path) -> Path:
        return (self.labels / rel).with_suffix(".txt")


def make_layout(unlabeled_dir: str, labeled_dir: str) -> Layout:
    src, dst = Path(unlabeled_dir).resolve(), Path(labeled_dir).resolve()
    if not src.is_dir():
        raise LabelConfigError(f"data.unlabeled_dir: folder not found: {src}")
    if src == dst or src.is_relative_to(dst):
        raise LabelConfigError(
            f"data.labeled_dir ({dst}) must not be data.unlabeled_dir or a folder above it"
        )
    return Layout(src, dst)


def scan(layout: Layout) -> list[Path]:
    """Images under unlabeled_dir (recursive, any-case extensions), minus labeled_dir."""
    return [
        p for p in list_images(layout.unlabeled) if not p.resolve().is_relative_to(layout.labeled)
    ]


def remove_stale_temps(folder: Path) -> int:
    """Delete the `.<name>.*.tmp` files an atomic write leaves when its process is killed."""
    if not folder.is_dir():
        return 0
    n = 0
    for tmp in folder.rglob(".*.tmp"):
        tmp.unlink(missing_ok=True)
        n += 1
    return n


def label_folder(
    ctx: RunContext,
    layout: Layout,
    names: Mapping[int, str],
    stage1: Stage1,
    stage2: Stage2,
    *,
    parallel: int,
) -> LabelCounts:
    """Label every image of `layout.unlabeled` (see the module docstring)."""
    cfg = ctx.config.autolabel
    log = ctx.logger
    counts = LabelCounts()
    t0 = time.perf_counter()
    write_dataset_files(layout.labeled, names)
    removed = remove_stale_temps(layout.labels)
    if removed:
        log.info("autolabel.cleanup", f"removed {removed} temp file(s) left by a killed run")
    images = scan(layout)
    todo: list[tuple[Path, Path]] = []
    for img in images:
        counts.seen += 1
        rel = img.relative_to(layout.unlabeled)
        if cfg.on_conflict == "skip" and layout.label_for(rel).exists():
            counts.skipped += 1
            link_or_copy(img, layout.images / rel)
            continue
        todo.append((img, rel))
    log.info(
        "autolabel.scan",
        f"{len(images)} image(s) in {layout.unlabeled}; {len(todo)} to label, "
        f"{counts.skipped} skipped (label exists)",
    )

    def publish() -> None:
        ctx.metrics.update(counts.as_metrics(time.perf_counter() - t0))

    window = max(2, parallel * 2)
    show = sys.stderr.isatty()
    with (
        ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="label") as pool,
        click.progressbar(
            length=len(todo), label="labeling", file=sys.stderr, hidden=not show
        ) as bar,
    ):
        pending: deque[tuple[Path, Path, Future[Any]]] = deque()
        it = iter(todo)

        def refill() -> None:
            while len(pending) < window:
                nxt = next(it, None)
                if nxt is None:
                    return
                pending.append((nxt[0], nxt[1], pool.submit(stage1, nxt[0])))

        refill()
        while pending:
            img_path, rel, fut = pending.popleft()
            refill()
            try:
                image, dets = stage2(fut.result())
                _write(ctx, layout, img_path, rel, image, dets, counts)
            except (VisionError, OSError, ValueError) as exc:
                counts.failed += 1
                counts.failures.append({"image": rel.as_posix(), "error": str(exc)})
                log.warn("autolabel.image_failed", f"{rel.as_posix()}: {exc}", image=str(img_path))
            counts.processed += 1
            bar.update(1)
            if counts.processed % 50 == 0:
                publish()
    publish()
    return counts


def _write(
    ctx: RunContext,
    layout: Layout,
    img_path: Path,
    rel: Path,
    image: np.ndarray,
    dets: list[Detection],
    counts: LabelCounts,
) -> None:
    cfg = ctx.config.autolabel
    h, w = image.shape[:2]
    boxes = [b for b in (detection_to_box(d, w, h) for d in dets) if b is not None]
    target = layout.label_for(rel)
    exists = target.exists()
    if exists and cfg.on_conflict == "skip":  # appeared while we ran: still never touch it
        counts.skipped += 1
        return
    if exists and cfg.on_conflict == "merge":
        old = target.read_bytes().decode("utf-8")
        text, added = merge(old, boxes, cfg.merge_iou)
        if added:
            atomic_write_text(target, text, fsync=False)
            counts.merged += 1
            counts.boxes_added_by_merge += added
            counts.labeled += 1
        else:
            counts.merge_unchanged += 1
    else:
        atomic_write_text(target, render(boxes), fsync=False)
        counts.labeled += 1
        if exists:
            counts.overwritten += 1
        else:
            counts.new += 1
        if not boxes:
            counts.empty += 1
    names = {d.class_id: d.class_name for d in dets}  # what the backend found (per-class figures)
    counts.per_class.update(names.get(b.class_id, str(b.class_id)) for b in boxes)
    link_or_copy(img_path, layout.images / rel)
    if cfg.visualize:
        import cv2

        ok, buf = cv2.imencode(".jpg", draw_detections(image, dets))
        if ok:
            atomic_write_bytes(
                (layout.previews / rel).with_suffix(".jpg"), buf.tobytes(), fsync=False
            )
