"""The labeling loop both backends share: scan, conflicts, overlap, atomic writes, counts.

The work on the images is vision-core's `FramePipeline` with the backend's engine (the
ONNX model's `LocalEngine`, the vision LLM's `LLMEngine`): files are decoded and prepared
in `workers` threads ahead of the model; the model runs on this thread (`runners` = 1) or,
for the LLM, in `runners` parallel requests; results come back in file order. Each label
file is written atomically (temp file + rename), so a run killed at any point leaves whole
files only, and a rerun with `skip` finishes the rest.

Every image seen is counted exactly once, in one of: `skipped` (a label existed), `new`,
`overwritten`, `merged` (boxes added to an existing file), `merge_unchanged` (every new box
overlapped one there) or `failed`; `labeled` = new + overwritten + merged.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import numpy as np

from vision_core.errors import LabelFormatError
from vision_core.formats.yolo import from_detection, render
from vision_core.fsutil import atomic_write_bytes, atomic_write_text
from vision_core.kernel import RunContext
from vision_core.media import Frame, draw_detections, encode_jpeg, list_images, read_frame
from vision_core.pipeline import Engine, FramePipeline
from vision_core.types import Detection
from vision_label.errors import LabelConfigError
from vision_label.labels import link_or_copy, merge, write_dataset_files

MAX_LISTED_FAILURES = 100


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

    @property
    def accounted(self) -> int:
        """Images in exactly one of the outcome counts (equals `seen` at the end)."""
        return (
            self.skipped
            + self.new
            + self.overwritten
            + self.merged
            + self.merge_unchanged
            + self.failed
        )

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
            "unaccounted": self.seen - self.accounted,  # 0: every image is in one count
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
    engine: Engine,
    *,
    workers: int,
    runners: int = 1,
) -> LabelCounts:
    """Label every image of `layout.unlabeled` with `engine` (see the module docstring)."""
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

    def open_image(entry: tuple[Path, Path]) -> Frame:
        return read_frame(entry[0])

    pipeline: FramePipeline[tuple[Path, Path]] = FramePipeline(
        engine,
        open=open_image,
        prepare_workers=workers,
        prepare_ahead=max(2, workers * 2, runners * 2),
        runners=runners,
    )
    show = sys.stderr.isatty()
    with click.progressbar(
        length=len(todo), label="labeling", file=sys.stderr, hidden=not show
    ) as bar:
        for job in pipeline.run(todo):
            img_path, rel = job.input
            outcome = job.outcome
            if job.frame is None or outcome is None or outcome.dropped is not None:
                error = (
                    str(job.error)
                    if job.error is not None
                    else (outcome.error if outcome is not None else None) or "no answer"
                )
                counts.failed += 1
                counts.failures.append({"image": rel.as_posix(), "error": error})
                log.warn(
                    "autolabel.image_failed", f"{rel.as_posix()}: {error}", image=str(img_path)
                )
            else:
                try:
                    _write(ctx, layout, img_path, rel, job.frame.image, outcome.detections, counts)
                except (OSError, ValueError, LabelFormatError) as exc:
                    counts.failed += 1
                    counts.failures.append({"image": rel.as_posix(), "error": str(exc)})
                    log.warn(
                        "autolabel.image_failed", f"{rel.as_posix()}: {exc}", image=str(img_path)
                    )
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
    """Write one image's labels (and image link, preview); counts it once all succeeded."""
    cfg = ctx.config.autolabel
    h, w = image.shape[:2]
    boxes = [b for b in (from_detection(d, w, h) for d in dets) if b is not None]
    target = layout.label_for(rel)
    exists = target.exists()
    if exists and cfg.on_conflict == "skip":  # appeared while we ran: still never touch it
        counts.skipped += 1
        return
    added = 0
    if exists and cfg.on_conflict == "merge":
        old = target.read_bytes().decode("utf-8")
        text, added = merge(old, boxes, cfg.merge_iou)
        if added:
            atomic_write_text(target, text, fsync=False)
        outcome = "merged" if added else "merge_unchanged"
    else:
        atomic_write_text(target, render(boxes), fsync=False)
        outcome = "overwritten" if exists else "new"
    link_or_copy(img_path, layout.images / rel)
    if cfg.visualize:
        preview = encode_jpeg(draw_detections(image, dets))
        atomic_write_bytes((layout.previews / rel).with_suffix(".jpg"), preview, fsync=False)
    setattr(counts, outcome, getattr(counts, outcome) + 1)
    if outcome != "merge_unchanged":
        counts.labeled += 1
    counts.boxes_added_by_merge += added
    if outcome in ("new", "overwritten") and not boxes:
        counts.empty += 1
    names = {d.class_id: d.class_name for d in dets}  # what the backend found (per-class figures)
    counts.per_class.update(names.get(b.class_id, str(b.class_id)) for b in boxes)
