"""Validate a YOLO detection dataset before any training starts.

Checks dataset.yaml (present, names, train/val), that image and label dirs exist, and that
every label line is `class cx cy w h` with a class id within names and normalised values
(vision_core.formats.yolo, the one reader of label lines).
Errors name the file and the line. The result is a normalised dataset.yaml written into the
run dir (absolute `path`), so a dataset that was moved still trains.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from vision_core.errors import DatasetError
from vision_core.formats.yolo import check_label_file, label_path_for
from vision_core.fsutil import atomic_write_text
from vision_core.media import IMAGE_EXTENSIONS

MAX_REPORTED = 10


@dataclass(slots=True)
class DatasetInfo:
    root: Path
    yaml_path: Path
    names: dict[int, str]
    splits: dict[str, list[Path]]  # split -> image files
    labels: dict[str, int] = field(default_factory=dict)  # split -> label lines
    missing_labels: dict[str, int] = field(default_factory=dict)  # images without a label file

    @property
    def nc(self) -> int:
        return len(self.names)

    split_dirs: dict[str, Path] = field(default_factory=dict)

    def write_normalised_yaml(self, path: Path) -> Path:
        data = {
            "path": str(self.root),
            "train": str(self._split_dir("train")),
            "val": str(self._split_dir("val")),
            "names": dict(self.names),
        }
        return atomic_write_text(path, yaml.safe_dump(data, sort_keys=False))

    def _split_dir(self, split: str) -> Path:
        return self.split_dirs[split]


def _names(raw: Any, yaml_path: Path) -> dict[int, str]:
    if isinstance(raw, list):
        return {i: str(n) for i, n in enumerate(raw)}
    if isinstance(raw, dict):
        try:
            names = {int(k): str(v) for k, v in raw.items()}
        except (TypeError, ValueError):
            raise DatasetError(f"{yaml_path}: names keys must be class ids (integers)") from None
        if sorted(names) != list(range(len(names))):
            raise DatasetError(
                f"{yaml_path}: names ids must be 0..{len(names) - 1}, got {sorted(names)}"
            )
        return names
    raise DatasetError(f"{yaml_path}: 'names' missing or not a list/mapping of class names")


def validate_yolo_dataset(
    dataset_dir: str | Path, *, key: str = "data.yolo_dataset_dir"
) -> DatasetInfo:
    """Validate the dataset at `dataset_dir` or raise DatasetError naming the file and line."""
    root = Path(dataset_dir).resolve()
    yaml_path = root / "dataset.yaml"
    if not root.is_dir():
        raise DatasetError(f"{key}: dataset dir not found: {root}")
    if not yaml_path.is_file():
        alt = root / "data.yaml"
        if not alt.is_file():
            raise DatasetError(
                f"{key}: {yaml_path} not found (a YOLO dataset needs dataset.yaml with names, train, val)"
            )
        yaml_path = alt
    try:
        meta = yaml.safe_load(yaml_path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise DatasetError(f"{yaml_path}: YAML syntax error: {exc}") from None
    if not isinstance(meta, dict):
        raise DatasetError(f"{yaml_path}: expected a mapping with names, train, val")
    names = _names(meta.get("names"), yaml_path)
    declared = Path(str(meta.get("path") or root))
    base = declared if declared.is_absolute() else root / declared
    if not base.is_dir():  # a moved dataset keeps a stale absolute path: use the yaml's dir
        base = root
    info = DatasetInfo(root=root, yaml_path=yaml_path, names=names, splits={})
    problems: list[str] = []
    for split in ("train", "val"):
        rel = meta.get(split)
        if not rel:
            raise DatasetError(f"{yaml_path}: '{split}' missing (the {split} images dir)")
        img_dir = (base / str(rel)).resolve()
        if not img_dir.is_dir():
            img_dir = (root / str(rel)).resolve()
        if not img_dir.is_dir():
            raise DatasetError(f"{yaml_path}: {split} images dir not found: {base / str(rel)}")
        images = sorted(
            p for p in img_dir.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
        )
        if not images:
            raise DatasetError(f"{yaml_path}: no images in {split} dir {img_dir}")
        label_dir = label_path_for(img_dir / "x.png").parent
        if not label_dir.is_dir():
            raise DatasetError(
                f"{yaml_path}: {split} labels dir not found: {label_dir} (expected beside {img_dir})"
            )
        lines = missing = 0
        for img in images:
            lbl = label_path_for(img)
            if lbl.is_file():
                lines += check_label_file(lbl, len(names), problems)
            else:
                missing += 1
        info.splits[split] = images
        info.split_dirs[split] = img_dir
        info.labels[split] = lines
        info.missing_labels[split] = missing
    if problems:
        shown = problems[:MAX_REPORTED]
        more = (
            f"\n  ... and {len(problems) - MAX_REPORTED} more"
            if len(problems) > MAX_REPORTED
            else ""
        )
        raise DatasetError("invalid labels:\n  " + "\n  ".join(shown) + more)
    if info.labels["train"] == 0:
        raise DatasetError(f"{key}: no labelled objects in the train split of {root}")
    return info
