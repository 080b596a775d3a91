"""vision-label test helpers: configs, folders of real images, a stub backend."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from vision_core.config import PipelineConfig, load_config


def write_toml(path: Path, workdir: Path, unlabeled: Path, labeled: Path, extra: str = "") -> Path:
    path.write_text(
        f'[run]\nname = "lab"\nworkdir = "{workdir}"\n'
        f'[data]\nunlabeled_dir = "{unlabeled}"\nlabeled_dir = "{labeled}"\n' + extra
    )
    return path


@pytest.fixture
def make_config(tmp_path: Path) -> Callable[..., PipelineConfig]:
    def make(unlabeled: Path, labeled: Path, *overrides: str) -> PipelineConfig:
        cfg = write_toml(tmp_path / "p.toml", tmp_path / "wd", unlabeled, labeled)
        return load_config(cfg, list(overrides))

    return make


@pytest.fixture(scope="session")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """40 unlabeled synthetic JPEGs (160 px) and their true labels."""
    from vision_core.synth import generate_unlabeled

    root = tmp_path_factory.mktemp("shapes")
    generate_unlabeled(root / "images", root / "truth", count=40, imgsz=160, seed=11)
    return root / "images", root / "truth"
