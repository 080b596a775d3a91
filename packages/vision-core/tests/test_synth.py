"""The synthetic dataset: valid YOLO format, exact boxes, deterministic by seed."""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np
import yaml

from vision_core.synth import CLASS_NAMES, generate_dataset, generate_unlabeled, read_dataset_names


def _digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.name != "dataset.yaml":
            h.update(p.relative_to(root).as_posix().encode() + p.read_bytes())
    return h.hexdigest()


def test_same_seed_same_bytes_other_seed_differs(tmp_path: Path) -> None:
    a = generate_dataset(tmp_path / "a", train_images=4, val_images=2, imgsz=96, seed=1).parent
    b = generate_dataset(tmp_path / "b", train_images=4, val_images=2, imgsz=96, seed=1).parent
    c = generate_dataset(tmp_path / "c", train_images=4, val_images=2, imgsz=96, seed=2).parent
    assert _digest(a) == _digest(b) != _digest(c)


def test_layout_and_labels_are_valid_yolo(synth_dataset: Path) -> None:
    meta = yaml.safe_load((synth_dataset / "dataset.yaml").read_text())
    assert meta["train"] == "images/train" and meta["val"] == "images/val"
    assert read_dataset_names(synth_dataset / "dataset.yaml") == CLASS_NAMES
    images = sorted((synth_dataset / "images" / "train").glob("*.png"))
    assert len(images) == 48 and len(list((synth_dataset / "images" / "val").glob("*.png"))) == 16
    for img in images:
        lines = (synth_dataset / "labels" / "train" / f"{img.stem}.txt").read_text().splitlines()
        assert 1 <= len(lines) <= 3
        for line in lines:
            cls, *xywh = line.split()
            assert int(cls) in CLASS_NAMES and all(0.0 <= float(v) <= 1.0 for v in xywh)


def test_boxes_are_the_exact_extent_of_the_drawn_shape(tmp_path: Path) -> None:
    """Each box edge touches the shape: the pixels just inside differ from just outside."""
    root = generate_dataset(
        tmp_path / "d", train_images=6, val_images=1, imgsz=128, seed=5, max_objects=1
    ).parent
    for img_path in sorted((root / "images" / "train").glob("*.png")):
        img = cv2.imread(str(img_path)).astype(np.int32)
        (line,) = (root / "labels" / "train" / f"{img_path.stem}.txt").read_text().splitlines()
        _, cx, cy, w, h = (float(v) for v in line.split())
        x1, x2 = round((cx - w / 2) * 128), round((cx + w / 2) * 128)
        y1, y2 = round((cy - h / 2) * 128), round((cy + h / 2) * 128)
        inside = img[y1:y2, x1:x2]
        # the shape's colour is the most common colour inside the box and reaches every edge
        colours, counts = np.unique(inside.reshape(-1, 3), axis=0, return_counts=True)
        shape = colours[counts.argmax()]
        mask = (inside == shape).all(-1)
        assert mask[0].any() and mask[-1].any() and mask[:, 0].any() and mask[:, -1].any()


def test_unlabeled_set_keeps_truth_apart(tmp_path: Path) -> None:
    out = generate_unlabeled(tmp_path / "u", tmp_path / "t", count=3, imgsz=64)
    assert sorted(p.name for p in out.iterdir()) == [
        "img_00000.jpg",
        "img_00001.jpg",
        "img_00002.jpg",
    ]
    assert (tmp_path / "t" / "img_00002.txt").is_file() and (
        tmp_path / "t" / "classes.txt"
    ).read_text().split() == list(CLASS_NAMES.values())
