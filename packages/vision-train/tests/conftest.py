"""vision-train test fixtures: a pipeline config writer, a renamed-classes dataset and the
CLI run on the Faster R-CNN backend."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result

from vision_train.cli import main


def run_frcnn(cfg: Path, *sets: str) -> Result:
    """`vision-train --config CFG --backend faster_rcnn --set S ...` in click's runner."""
    args = ["--config", str(cfg), "--backend", "faster_rcnn"]
    for override in sets:
        args += ["--set", override]
    return CliRunner().invoke(main, args)


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[..., Path]:
    """write_config(dataset, name="p.toml") -> a small, fast pipeline config whose runs go
    to tmp_path/wd (tests change the rest with --set)."""

    def write(dataset: Path, name: str = "p.toml") -> Path:
        path = tmp_path / name
        path.write_text(
            f'[run]\nname = "t"\nworkdir = "{tmp_path / "wd"}"\n'
            f'[data]\nyolo_dataset_dir = "{dataset}"\n'
            "[train]\nepochs = 1\n[train.yolo]\nimgsz = 64\nbatch = 8\nworkers = 0\n"
            "[train.faster_rcnn]\nimgsz = 64\nbatch = 4\nmax_samples = 8\n"
            "[export]\ncalib_samples = 4\n"
        )
        return path

    return write


@pytest.fixture
def renamed_dataset(tmp_path: Path) -> Callable[[Path, list[str]], Path]:
    """renamed_dataset(src, names) -> a dataset.yaml with other class names over `src`'s
    images and labels."""

    def make(src: Path, names: list[str]) -> Path:
        meta = yaml.safe_load((src / "dataset.yaml").read_text())
        dst = tmp_path / "renamed"
        dst.mkdir()
        meta["path"] = str(src.resolve())
        meta["names"] = dict(enumerate(names))
        (dst / "dataset.yaml").write_text(yaml.safe_dump(meta))
        return dst

    return make
