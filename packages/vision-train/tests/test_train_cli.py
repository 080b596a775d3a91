"""vision-train end to end: tiny real trainings through the CLI, bad inputs, no network."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.fixtures.netguard import guarded_env
from vision_train.cli import main

EXE = Path(sys.executable).parent / "vision-train"


def _toml(path: Path, workdir: Path, dataset: Path, extra: str = "") -> Path:
    path.write_text(
        f'[run]\nname = "t"\nworkdir = "{workdir}"\n[data]\nyolo_dataset_dir = "{dataset}"\n'
        "[train]\nepochs = 1\n[train.yolo]\nimgsz = 64\nbatch = 8\nworkers = 0\n"
        "[train.faster_rcnn]\nimgsz = 96\nbatch = 4\nmax_samples = 8\n"
        "[export]\ncalib_samples = 4\n" + extra
    )
    return path


def _only_run(workdir: Path) -> Path:
    (run,) = (workdir / "runs").iterdir()
    return run


@pytest.mark.slow
def test_yolo_trains_exports_quantizes_and_evaluates_with_network_blocked(
    synth_dataset: Path, tmp_path: Path
) -> None:
    # with the OpenVINO IR INT8 too (NNCF), which must not reach the network either
    cfg = _toml(tmp_path / "p.toml", tmp_path / "wd", synth_dataset, "openvino_int8 = true\n")
    netlog = tmp_path / "net.log"
    env = guarded_env(netlog)
    env["YOLO_CONFIG_DIR"] = str(tmp_path / "ucfg")
    res = subprocess.run(
        [str(EXE), "--config", str(cfg)], capture_output=True, text=True, env=env, timeout=600
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert not netlog.exists() or netlog.read_text() == "", (
        f"tried the network: {netlog.read_text()}"
    )
    run = _only_run(tmp_path / "wd")
    for name in ("model.onnx", "model-int8.onnx", "metrics.json", "artifacts.json", "config.json"):
        assert (run / name).is_file(), name
    metrics = json.loads((run / "metrics.json").read_text())
    m = metrics["metrics"]
    assert metrics["status"] == "ok" and metrics["dry_run"] is False
    assert m["epochs_trained"] == 1 and len(m["epochs"]) == 1
    assert {"train_box_loss", "train_cls_loss", "mAP50", "mAP50-95"} <= set(m["epochs"][0])
    for key in ("fp32", "int8"):
        assert 0.0 <= m[key]["map50"] <= 1.0 and m[key]["images"] == 16
    assert m["int8"]["mode"] == "static" and m["int8"]["excluded_nodes"] > 0
    assert m["latency_ms_p50"]["fp32"] > 0 and m["latency_ms_p50"]["int8"] > 0
    artifacts = json.loads((run / "artifacts.json").read_text())
    assert artifacts["model_int8_path"] == str(run / "model-int8.onnx")
    assert artifacts["model_int8_ir"] == str(run / "model-int8.xml")
    assert (run / "model-int8.xml").is_file() and (run / "model-int8.bin").is_file()
    ov = m["openvino_int8"]
    assert ov["mode"] == "nncf-ptq" and 0.0 <= ov["int8"]["map50"] <= 1.0
    assert "ok: train (yolo)" in res.stdout


def test_network_guard_itself_blocks_and_records(tmp_path: Path) -> None:
    """The guard the no-network test relies on does catch an outside connection."""
    netlog = tmp_path / "net.log"
    code = "import socket\ntry:\n socket.create_connection(('192.0.2.1', 80), timeout=1)\nexcept OSError as e:\n print('blocked', e)"
    res = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=guarded_env(netlog)
    )
    assert "blocked" in res.stdout and "192.0.2.1" in netlog.read_text()


@pytest.mark.slow
def test_faster_rcnn_trains_exports_quantizes_and_evaluates(
    synth_dataset: Path, tmp_path: Path
) -> None:
    cfg = _toml(tmp_path / "p.toml", tmp_path / "wd", synth_dataset)
    res = subprocess.run(
        [
            str(EXE),
            "--config",
            str(cfg),
            "--backend",
            "faster_rcnn",
            "--set",
            "export.quantize_mode=dynamic",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    run = _only_run(tmp_path / "wd")
    for name in (
        "model.onnx",
        "model-int8.onnx",
        "best.pt",
        "class_map.json",
        "metrics.json",
        "artifacts.json",
    ):
        assert (run / name).is_file(), name
    m = json.loads((run / "metrics.json").read_text())["metrics"]
    assert m["variant"] == "mobilenet_v3" and m["train_images"] == 8
    assert m["int8"]["mode"] == "dynamic"  # static FRCNN calibration takes minutes on 2 cores
    assert 0.0 <= m["fp32"]["map50"] <= 1.0 and 0.0 <= m["int8"]["map50"] <= 1.0
    assert json.loads((run / "class_map.json").read_text()) == {
        "0": "circle",
        "1": "square",
        "2": "triangle",
    }
    import onnx

    meta = {p.key: p.value for p in onnx.load(str(run / "model.onnx")).metadata_props}
    assert meta["arch"] == "faster_rcnn" and "triangle" in meta["names"]


def test_dry_run_validates_and_marks_artifacts(synth_dataset: Path, tmp_path: Path) -> None:
    cfg = _toml(tmp_path / "p.toml", tmp_path / "wd", synth_dataset)
    res = CliRunner().invoke(main, ["--config", str(cfg), "--set", "train.dry_run=true"])
    assert res.exit_code == 0, res.output
    run = _only_run(tmp_path / "wd")
    assert json.loads((run / "artifacts.json").read_text())["dry_run"] is True
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["dry_run"] is True and metrics["metrics"]["train_images"] == 48
    assert not (run / "model.onnx").exists()


def _broken_dataset(src: Path, dst: Path, how: str) -> Path:
    shutil.copytree(src, dst)
    label = sorted((dst / "labels" / "train").glob("*.txt"))[3]
    if how == "no_yaml":
        (dst / "dataset.yaml").unlink()
    elif how == "four_fields":
        label.write_text("0 0.5 0.5 0.2\n")
    elif how == "class_out_of_range":
        label.write_text("0 0.5 0.5 0.2 0.2\n7 0.5 0.5 0.2 0.2\n")
    return dst


@pytest.mark.parametrize(
    ("how", "args", "message"),
    [
        ("no_yaml", [], "dataset.yaml not found"),
        ("four_fields", [], "line 1: expected 5 fields (class cx cy w h), got 4"),
        ("class_out_of_range", [], "line 2: class id 7 out of range (dataset has 3 classes: 0..2)"),
        (
            "ok",
            ["--set", "train.yolo.weights=/nope/best.pt"],
            "train.yolo.weights: file not found: /nope/best.pt",
        ),
        (
            "ok",
            ["--backend", "faster_rcnn", "--set", "train.faster_rcnn.weights=/nope/frcnn.pt"],
            "train.faster_rcnn.weights: file not found",
        ),
        (
            "ok",
            ["--set", "train.faster_rcnn.variant=resnet101"],
            "train.faster_rcnn.variant: expected one of",
        ),
        (
            "ok",
            ["--set", "export.opset=9"],
            "export.opset: expected an integer >= 11 and <= 23, got '9'",
        ),
    ],
)
def test_bad_input_fails_the_run_with_a_clear_message(
    synth_dataset: Path, tmp_path: Path, how: str, args: list[str], message: str
) -> None:
    data = _broken_dataset(synth_dataset, tmp_path / "ds", how)
    cfg = _toml(tmp_path / "p.toml", tmp_path / "wd", data)
    res = CliRunner().invoke(main, ["--config", str(cfg), *args])
    assert res.exit_code != 0
    assert message in res.output
    if how == "four_fields" or how == "class_out_of_range":
        assert "labels/train/train_00003.txt" in res.output
    run = _only_run(tmp_path / "wd")
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "failed" and message in metrics["error"]
    assert json.loads((run / "artifacts.json").read_text())["status"] == "failed"


def test_yolo_model_yaml_that_does_not_exist_is_named(synth_dataset: Path, tmp_path: Path) -> None:
    cfg = _toml(tmp_path / "p.toml", tmp_path / "wd", synth_dataset)
    res = CliRunner().invoke(
        main,
        [
            "--config",
            str(cfg),
            "--set",
            "train.yolo.weights=yolo99q.yaml",
            "--set",
            "train.dry_run=true",
        ],
    )
    assert (
        res.exit_code == 1
        and "train.yolo.weights: model YAML not found: yolo99q.yaml" in res.output
    )


def test_gpu_device_without_gpu_is_a_clear_error(synth_dataset: Path, tmp_path: Path) -> None:
    pytest.importorskip("torch")
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    cfg = _toml(tmp_path / "p.toml", tmp_path / "wd", synth_dataset)
    res = CliRunner().invoke(main, ["--config", str(cfg), "--set", "train.device=0"])
    assert (
        res.exit_code == 1 and "train.device: '0' asks for a GPU but torch sees none" in res.output
    )
