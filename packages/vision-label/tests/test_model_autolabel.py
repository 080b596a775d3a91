"""`vision-label model` end to end with a real ONNX model (subprocesses, as a user runs it):
bad files counted not fatal, sub-folders mirrored, previews, SIGKILL + resume, and
vision-train training on the result."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import write_toml

EXE = Path(sys.executable).parent
MODEL_ARGS = ["--set", "infer.conf=0.001", "--set", "infer.max_det=8"]


def _run(cmd: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, **kw)  # type: ignore[call-overload, no-any-return]


def _label_model(cfg: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The installed `vision-label model --config CFG ARGS...`."""
    return _run([str(EXE / "vision-label"), "model", "--config", str(cfg), *args])


def _metrics(workdir: Path) -> dict[str, object]:
    runs = sorted((workdir / "runs").iterdir())
    return json.loads((runs[-1] / "metrics.json").read_text())  # type: ignore[no-any-return]


def test_bad_files_are_counted_and_good_images_labeled_mirroring_folders(
    shapes: tuple[Path, Path], tiny_yolo_onnx: Path, tmp_path: Path
) -> None:
    src = tmp_path / "in"
    (src / "nested" / "deeper").mkdir(parents=True)
    imgs = sorted(shapes[0].glob("*.jpg"))
    shutil.copy(imgs[0], src / "a.jpg")
    shutil.copy(imgs[1], src / "nested" / "b.JPG")
    shutil.copy(imgs[2], src / "nested" / "deeper" / "c.jpeg")
    (src / "corrupt.jpg").write_bytes(imgs[3].read_bytes()[:200] + b"\x00garbage" * 10)
    (src / "empty.png").write_bytes(b"")
    (src / "notes.txt").write_text("not an image")
    labeled = tmp_path / "out"
    cfg = write_toml(tmp_path / "p.toml", tmp_path / "wd", src, labeled)
    res = _label_model(
        cfg,
        "--set",
        f"infer.model_path={tiny_yolo_onnx}",
        "--set",
        "autolabel.visualize=true",
        *MODEL_ARGS,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert "images seen 5" in res.stdout and "failed 2" in res.stdout
    labels = sorted(
        p.relative_to(labeled / "labels").as_posix() for p in (labeled / "labels").rglob("*.txt")
    )
    assert labels == ["a.txt", "nested/b.txt", "nested/deeper/c.txt"]
    assert (labeled / "images" / "nested" / "deeper" / "c.jpeg").is_file()
    assert (labeled / "previews" / "nested" / "b.jpg").is_file()
    assert not list((labeled / "labels").rglob("*.jpg"))  # previews beside, not inside
    m = _metrics(tmp_path / "wd")
    mm = m["metrics"]
    assert m["status"] == "ok" and isinstance(mm, dict)
    assert (mm["images_seen"], mm["labeled"], mm["failed"]) == (5, 3, 2)
    failed = {f["image"]: f["error"] for f in mm["failures"]}
    assert "empty file" in failed["empty.png"] and "not a decodable image" in failed["corrupt.jpg"]
    assert mm["images_per_sec"] > 0 and mm["detections_total"] > 0


def test_missing_model_path_fails_clearly(shapes: tuple[Path, Path], tmp_path: Path) -> None:
    cfg = write_toml(tmp_path / "p.toml", tmp_path / "wd", shapes[0], tmp_path / "out")
    res = _label_model(cfg)
    assert res.returncode == 1
    assert "no model to label with: infer.model_path is empty" in res.stdout
    assert _metrics(tmp_path / "wd")["status"] == "failed"


# the real CLI, with every inference slowed down so that the kill lands mid-way
SLOW_LABEL = (
    "import time\n"
    "import vision_core.infer.yolo as y\n"
    "orig = y.YoloDetector.run\n"
    "def slow(self, tensor):\n    time.sleep(0.03)\n    return orig(self, tensor)\n"
    "y.YoloDetector.run = slow\n"
    "from vision_label.cli import main\n"
    "main()\n"
)


@pytest.mark.slow
def test_sigkill_leaves_whole_files_and_skip_rerun_equals_an_uninterrupted_run(
    shapes: tuple[Path, Path], tiny_yolo_onnx: Path, tmp_path: Path
) -> None:
    src = shapes[0]
    args = ["--set", f"infer.model_path={tiny_yolo_onnx}", *MODEL_ARGS]
    ref = tmp_path / "ref"
    cfg_ref = write_toml(tmp_path / "ref.toml", tmp_path / "wd_ref", src, ref)
    assert _label_model(cfg_ref, *args).returncode == 0

    out = tmp_path / "out"
    cfg = write_toml(tmp_path / "p.toml", tmp_path / "wd", src, out)
    proc = subprocess.Popen(
        [sys.executable, "-c", SLOW_LABEL, "model", "--config", str(cfg), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        done = list((out / "labels").glob("*.txt")) if (out / "labels").is_dir() else []
        if len(done) >= 10 or proc.poll() is not None:
            break
        time.sleep(0.005)
    assert proc.poll() is None, "the run finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    partial = sorted((out / "labels").glob("*.txt"))
    assert 10 <= len(partial) < 40
    for p in partial:  # every file that exists is whole: equal to the reference's
        assert p.read_bytes() == (ref / "labels" / p.name).read_bytes()

    res = _label_model(cfg, *args)
    assert res.returncode == 0, res.stderr[-2000:]
    mm = _metrics(tmp_path / "wd")["metrics"]
    assert isinstance(mm, dict) and mm["skipped"] == len(partial)
    assert mm["skipped"] + mm["new"] == 40
    final = {p.name: p.read_bytes() for p in (out / "labels").iterdir()}
    expected = {p.name: p.read_bytes() for p in (ref / "labels").iterdir()}
    assert final == expected  # no stray temp files either
    assert sorted(os.listdir(out / "images")) == sorted(os.listdir(ref / "images"))


@pytest.mark.slow
def test_vision_train_trains_on_the_labeled_folder(
    shapes: tuple[Path, Path], tiny_yolo_onnx: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    cfg = write_toml(tmp_path / "p.toml", tmp_path / "wd", shapes[0], out)
    res = _label_model(cfg, "--set", f"infer.model_path={tiny_yolo_onnx}", *MODEL_ARGS)
    assert res.returncode == 0, res.stderr[-2000:]
    assert (out / "dataset.yaml").is_file() and (out / "classes.txt").is_file()
    train_cfg = tmp_path / "train.toml"
    train_cfg.write_text(
        f'[run]\nname = "t"\nworkdir = "{tmp_path / "twd"}"\n'
        f'[data]\nyolo_dataset_dir = "{out}"\n'
        "[train.yolo]\nbatch = 8\nworkers = 0\n[export]\nquantize = false\n"
    )
    env = dict(os.environ, YOLO_CONFIG_DIR=str(tmp_path / "ucfg"))
    res = _run(
        [
            str(EXE / "vision-train"),
            "--config",
            str(train_cfg),
            "--set",
            "train.dry_run=false",
            "--set",
            "train.epochs=1",
            "--set",
            "train.yolo.imgsz=64",
        ],
        env=env,
    )
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    m = _metrics(tmp_path / "twd")
    assert m["status"] == "ok" and m["metrics"]["epochs_trained"] == 1  # type: ignore[index]
