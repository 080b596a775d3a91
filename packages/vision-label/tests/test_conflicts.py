"""on_conflict = skip | overwrite | merge, on real image and label files (a stub detector
gives known boxes so the merge rule can be checked exactly)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from vision_core.config import PipelineConfig
from vision_core.kernel import RunContext, RunResult, VisionKernel
from vision_core.media import Frame
from vision_core.pipeline import Engine, Outcome
from vision_core.registry import KernelRegistry
from vision_core.types import Detection
from vision_label.engine import label_folder, make_layout
from vision_label.labels import merge, parse_line

NAMES = {0: "circle", 1: "square", 2: "triangle"}
# on a 160 x 160 image: a circle at the top-left, a square bottom-right
NEW = [
    Detection(class_id=0, class_name="circle", score=0.9, xyxy=(16.0, 16.0, 48.0, 48.0)),
    Detection(class_id=1, class_name="square", score=0.8, xyxy=(96.0, 96.0, 144.0, 144.0)),
]


class StubEngine(Engine):
    """Known boxes for every image (the merge rule is checked exactly against them)."""

    def __init__(self, dets: list[Detection]) -> None:
        self.dets = dets

    def prepare(self, frame: Frame) -> None:
        return None

    def infer(self, frame: Frame, item: Any) -> Outcome:
        return Outcome(list(self.dets))


def run_stub(cfg: PipelineConfig, dets: list[Detection]) -> RunResult:
    def backend(ctx: RunContext) -> dict[str, Any]:
        layout = make_layout(cfg.data.unlabeled_dir, cfg.data.labeled_dir)
        label_folder(ctx, layout, NAMES, StubEngine(dets), workers=2)
        return {}

    registry = KernelRegistry(use_entry_points=False)
    registry.register("autolabeler", "stub", backend)
    return VisionKernel(cfg, registry, console=False).run_autolabel("stub")


@pytest.fixture
def folder(shapes: tuple[Path, Path], tmp_path: Path) -> tuple[Path, Path]:
    src = tmp_path / "in"
    src.mkdir()
    for p in sorted(shapes[0].glob("*.jpg"))[:3]:
        shutil.copy(p, src / p.name)
    labeled = tmp_path / "out"
    (labeled / "labels").mkdir(parents=True)
    return src, labeled


# an existing, hand-made label file: odd spacing and a comment-ish trailing field kept as is
EXISTING = "0  0.200000 0.200000 0.200000 0.200000\n2 0.5 0.5 0.1 0.1 0.77\n"


def test_skip_leaves_existing_label_bytes_identical(
    folder: tuple[Path, Path], make_config: Callable[..., PipelineConfig]
) -> None:
    src, labeled = folder
    existing = labeled / "labels" / "img_00000.txt"
    existing.write_bytes(EXISTING.encode())
    mtime = existing.stat().st_mtime_ns
    res = run_stub(make_config(src, labeled, "autolabel.on_conflict=skip"), NEW)
    assert res.ok, res.error
    assert existing.read_bytes() == EXISTING.encode() and existing.stat().st_mtime_ns == mtime
    m = res.run_context.metrics
    assert (m["skipped"], m["labeled"], m["new"]) == (1, 2, 2)
    assert (labeled / "images" / "img_00000.jpg").is_file()  # still part of the dataset


def test_overwrite_replaces_the_existing_file(
    folder: tuple[Path, Path], make_config: Callable[..., PipelineConfig]
) -> None:
    src, labeled = folder
    existing = labeled / "labels" / "img_00000.txt"
    existing.write_text(EXISTING)
    res = run_stub(make_config(src, labeled, "autolabel.on_conflict=overwrite"), NEW)
    assert res.ok, res.error
    assert existing.read_text() == (
        "0 0.200000 0.200000 0.200000 0.200000\n1 0.750000 0.750000 0.300000 0.300000\n"
    )
    m = res.run_context.metrics
    assert (m["overwritten"], m["new"], m["skipped"]) == (1, 2, 0)


def test_merge_keeps_every_old_line_and_adds_only_non_overlapping_boxes(
    folder: tuple[Path, Path], make_config: Callable[..., PipelineConfig]
) -> None:
    src, labeled = folder
    existing = labeled / "labels" / "img_00000.txt"
    existing.write_bytes(EXISTING.encode())  # holds the same circle as NEW[0]
    res = run_stub(
        make_config(src, labeled, "autolabel.on_conflict=merge", "autolabel.merge_iou=0.5"), NEW
    )
    assert res.ok, res.error
    text = existing.read_bytes().decode()
    assert text.startswith(EXISTING)  # byte for byte
    assert text[len(EXISTING) :] == "1 0.750000 0.750000 0.300000 0.300000\n"  # only the square
    m = res.run_context.metrics
    assert (m["merged"], m["boxes_added_by_merge"]) == (1, 1)


def test_merge_rule_is_per_class_and_uses_the_threshold() -> None:
    circle = parse_line("0 0.5 0.5 0.2 0.2")
    shifted = parse_line("0 0.55 0.5 0.2 0.2")  # IoU 0.6 with circle
    as_square = parse_line("1 0.5 0.5 0.2 0.2")
    assert circle and shifted and as_square
    old = "0 0.5 0.5 0.2 0.2"  # no trailing newline: one is added before new lines
    assert merge(old, [shifted], 0.5) == (old, 0)
    assert merge(old, [shifted], 0.7) == (old + "\n0 0.550000 0.500000 0.200000 0.200000\n", 1)
    assert merge(old, [as_square], 0.5)[1] == 1  # another class never blocks


def test_empty_result_writes_an_empty_label_file(
    folder: tuple[Path, Path], make_config: Callable[..., PipelineConfig]
) -> None:
    src, labeled = folder
    res = run_stub(make_config(src, labeled), [])
    assert res.ok
    assert [p.read_text() for p in sorted((labeled / "labels").glob("*.txt"))] == ["", "", ""]
    assert res.run_context.metrics["empty"] == 3
    assert (labeled / "classes.txt").read_text() == "circle\nsquare\ntriangle\n"


def test_every_image_is_counted_once_in_a_merge_run(
    folder: tuple[Path, Path], make_config: Callable[..., PipelineConfig]
) -> None:
    """The summary adds up: seen = skipped + new + overwritten + merged + merge_unchanged +
    failed, whatever each image went through."""
    src, labeled = folder
    (labeled / "labels" / "img_00000.txt").write_text(EXISTING)  # gets the square: merged
    both = "0 0.200000 0.200000 0.200000 0.200000\n1 0.750000 0.750000 0.300000 0.300000\n"
    (labeled / "labels" / "img_00001.txt").write_text(both)  # has both boxes: unchanged
    (src / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")  # fails
    res = run_stub(make_config(src, labeled, "autolabel.on_conflict=merge"), NEW)
    assert res.ok, res.error
    m = res.run_context.metrics
    assert (m["images_seen"], m["merged"], m["merge_unchanged"], m["new"], m["failed"]) == (
        4, 1, 1, 1, 1
    )  # fmt: skip
    assert m["labeled"] == m["new"] + m["overwritten"] + m["merged"] == 2
    assert m["unaccounted"] == 0
