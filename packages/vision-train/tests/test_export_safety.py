"""Exports touch nothing of the user's: they work on a copy in a temporary dir and write
only into the run dir; a read-only checkpoint folder exports fine."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from vision_train.cli import main


@contextlib.contextmanager
def read_only(folder: Path) -> Iterator[None]:
    """`folder` read-only for this process: mode 0555, and for root (which modes do not
    stop) the immutable attribute too. Proven by a failing write before the body runs."""
    folder.chmod(0o555)
    immutable = False
    try:
        if os.geteuid() == 0:
            chattr = shutil.which("chattr")
            res = (
                subprocess.run([chattr, "+i", str(folder)], capture_output=True) if chattr else None
            )
            if res is None or res.returncode != 0:
                pytest.skip("running as root without chattr +i: cannot make a folder read-only")
            immutable = True
        with pytest.raises(OSError):
            (folder / "probe").write_text("x")
        yield
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(folder)], check=True)
        folder.chmod(0o755)


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.fixture
def frcnn_checkpoint(tmp_path: Path) -> Path:
    """A Faster R-CNN checkpoint of ours (untrained: the export is what is tested)."""
    import torch

    from vision_train.models.faster_rcnn import build_model, save_checkpoint

    torch.manual_seed(0)  # the same untrained weights every run
    names = {0: "circle", 1: "square", 2: "triangle"}
    return save_checkpoint(
        tmp_path / "frcnn.pt", build_model("mobilenet_v3", 4, 64), "mobilenet_v3", names, 64
    )


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["yolo", "faster_rcnn"])
def test_export_keeps_a_users_onnx_beside_the_checkpoint_and_takes_a_read_only_folder(
    backend: str,
    trained_yolo: Any,
    synth_dataset: Path,
    frcnn_checkpoint: Path,
    tmp_path: Path,
    write_config: Callable[..., Path],
) -> None:
    if backend == "yolo":
        source, dataset = trained_yolo.checkpoint, trained_yolo.dataset
        sets = ["--set", f"train.yolo.imgsz={trained_yolo.imgsz}"]
    else:  # dynamic INT8: static calibration of this graph takes minutes on 2 cores
        source, dataset = frcnn_checkpoint, synth_dataset
        sets = ["--set", "export.quantize_mode=dynamic"]
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    shutil.copyfile(source, folder / "X.pt")
    (folder / "X.onnx").write_bytes(b"the user's own model, not an export\x00" * 64)
    before = _snapshot(folder)
    cfg = write_config(dataset)
    with read_only(folder):
        res = CliRunner().invoke(
            main,
            ["export", "--config", str(cfg), "--backend", backend,
             "--weights", str(folder / "X.pt"), *sets],
        )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert _snapshot(folder) == before  # X.onnx byte-identical, nothing added or removed
    (run,) = (tmp_path / "wd" / "runs").iterdir()
    artifacts = json.loads((run / "artifacts.json").read_text())
    assert artifacts["model_path"] == str(run / "model.onnx")
    assert artifacts["model_int8_path"] == str(run / "model-int8.onnx")
    assert (run / "model.onnx").read_bytes() != (folder / "X.onnx").read_bytes()
    leftovers = sorted(p.name for p in run.iterdir() if p.name.endswith((".tmp", ".tmp.onnx")))
    assert leftovers == []
