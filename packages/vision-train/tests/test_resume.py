"""`vision-train --resume RUN_DIR` continues a real training run stopped by SIGKILL (YOLO)
or Ctrl-C (Faster R-CNN) to the configured epochs, in a new run dir."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from vision_train.cli import main

EXE = Path(sys.executable).parent / "vision-train"


def _train_until_first_epoch(
    args: list[str], workdir: Path
) -> tuple[subprocess.Popen[bytes], Path]:
    """Start a training run; return it once log.jsonl records its first finished epoch."""
    proc = subprocess.Popen(
        [str(EXE), *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 400
    while time.monotonic() < deadline and proc.poll() is None:
        logs = list((workdir / "runs").glob("*/log.jsonl"))
        if logs and '"train.epoch"' in logs[0].read_text():
            return proc, logs[0].parent
        time.sleep(0.2)  # polling a file another process writes: no event to wait on
    proc.kill()
    pytest.fail(f"no epoch finished: {proc.communicate()[1].decode()[-3000:]}")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("backend", "sig", "sets"),
    [
        ("yolo", signal.SIGKILL, []),
        ("faster_rcnn", signal.SIGINT, ["--set", "train.faster_rcnn.max_samples=4"]),
    ],
)
def test_resume_continues_an_interrupted_run_to_its_epochs(
    backend: str,
    sig: signal.Signals,
    sets: list[str],
    synth_dataset: Path,
    tmp_path: Path,
    write_config: Callable[..., Path],
) -> None:
    cfg = write_config(synth_dataset)
    workdir = tmp_path / "wd"
    args = ["--config", str(cfg), "--backend", backend, "--set", "train.epochs=3",
            "--set", "export.quantize=false", *sets]  # fmt: skip
    proc, first = _train_until_first_epoch(args, workdir)
    os.killpg(proc.pid, sig)
    proc.communicate(timeout=120)
    assert proc.returncode == (-signal.SIGKILL if sig == signal.SIGKILL else 130)
    assert not (first / "model.onnx").exists()
    if sig == signal.SIGINT:  # the kernel recorded the interruption
        assert json.loads((first / "metrics.json").read_text())["status"] == "interrupted"

    res = CliRunner().invoke(main, ["--resume", str(first)])
    assert res.exit_code == 0, res.output
    (resumed,) = set((workdir / "runs").iterdir()) - {first}
    record = json.loads((resumed / "metrics.json").read_text())
    m = record["metrics"]
    assert record["status"] == "ok" and record["backend"] == backend
    assert m["resumed_from"] == str(first)
    assert [e["epoch"] for e in m["epochs"]] == [1, 2, 3] and m["epochs_trained"] == 3
    log = (resumed / "log.jsonl").read_text()
    assert '"train.resume"' in log and log.count('"train.epoch"') < 3  # epoch 1 was not redone
    assert (resumed / "model.onnx").is_file()
    artifacts = json.loads((resumed / "artifacts.json").read_text())
    assert Path(artifacts["checkpoint"]).is_relative_to(resumed)

    # a finished run has nothing to resume
    again = CliRunner().invoke(main, ["--resume", str(resumed)])
    assert again.exit_code == 2 and "finished (status ok): nothing to resume" in again.output


def test_resume_refuses_other_settings_and_non_runs(tmp_path: Path) -> None:
    res = CliRunner().invoke(main, ["--resume", str(tmp_path), "--set", "train.epochs=9"])
    assert res.exit_code == 2 and "do not pass --config, --set or --backend" in res.output
    res = CliRunner().invoke(main, ["--resume", str(tmp_path)])
    assert res.exit_code == 2 and f"{tmp_path / 'config.json'} not found" in res.output
