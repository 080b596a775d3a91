"""Runtime choice on a device: `vision-edge tune`, local mode on `auto`, a missing extra."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from .conftest import edge_argv, edge_env, run_edge

NO_STATS = "deploy.stats.endpoint="
FAST = ("infer.tune_seconds=0.3", "infer.tune_frames=4")


@pytest.fixture
def model_dir(trained_model_dir: Path) -> Path:
    return trained_model_dir


@pytest.mark.slow
def test_tune_prints_the_table_and_local_mode_on_auto_reads_the_choice(
    tmp_path: Path, model_dir: Path, synth_video: Path, val_images: Path
) -> None:
    pytest.importorskip("openvino")
    work = tmp_path / "wd"
    sets = [f"infer.model_path={model_dir / 'model.onnx'}", *FAST,
            f"infer.tune_images={val_images}"]  # fmt: skip
    proc = subprocess.run(
        edge_argv(work, sets, command="tune"), capture_output=True, text=True, timeout=600,
        env=edge_env(),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    for row in ("onnxruntime/fp32", "onnxruntime/int8", "openvino/fp32", "openvino/int8"):
        assert row in out
    assert "measured now" in out
    chosen = next(line for line in out.splitlines() if line.startswith("*"))
    choice = chosen[1:].split()[0]  # "runtime/precision"
    assert (
        f"infer.runtime = {choice.split('/')[0]}, infer.precision = {choice.split('/')[1]}" in out
    )
    cache = json.loads((work / "tune-cache.json").read_text())
    (entry,) = cache.values()
    assert f"{entry['runtime']}/{entry['precision']}" == choice

    # the whole local pipeline on auto: it starts from the cached choice, on a video
    res = run_edge(
        work,
        f"infer.model_path={model_dir / 'model.onnx'}",
        "infer.runtime=auto",
        "infer.precision=auto",
        *FAST,
        f"infer.tune_images={val_images}",
        "deploy.edge.source=video",
        f"deploy.edge.video_path={synth_video}",
        NO_STATS,
    )
    assert res.proc.returncode == 0, res.output
    assert res.metrics["frames"] == 24 and res.record["status"] == "ok"
    assert json.loads((work / "tune-cache.json").read_text()) == cache  # nothing re-measured
    cached = subprocess.run(
        [*edge_argv(work, sets, command="tune"), "--cached"], capture_output=True, text=True,
        timeout=300, env=edge_env(),
    )  # fmt: skip
    assert cached.returncode == 0 and "cached choice" in cached.stdout


@pytest.mark.slow
def test_local_mode_on_auto_tunes_at_first_start(
    tmp_path: Path, model_dir: Path, synth_video: Path
) -> None:
    """No tune beforehand: the first start measures on the edge's own video and caches."""
    pytest.importorskip("openvino")
    work = tmp_path / "wd"
    res = run_edge(
        work,
        f"infer.model_path={model_dir / 'model.onnx'}",
        "infer.runtime=auto",
        "infer.precision=fp32",
        *FAST,
        "deploy.edge.source=video",
        f"deploy.edge.video_path={synth_video}",
        NO_STATS,
    )
    assert res.proc.returncode == 0, res.output
    assert res.metrics["frames"] == 24
    (entry,) = json.loads((work / "tune-cache.json").read_text()).values()
    assert {r["runtime"] for r in entry["table"]} == {"onnxruntime", "openvino"}
    assert {r["precision"] for r in entry["table"]} == {"fp32"}


BLOCKED_EDGE = textwrap.dedent(
    """
    import importlib.abc
    import sys

    class Block(importlib.abc.MetaPathFinder):  # a device without vision-edge[openvino]
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {"openvino", "torch", "ultralytics", "litestar"}:
                raise ModuleNotFoundError(f"No module named {name!r}")
            return None

    sys.meta_path.insert(0, Block())
    from vision_edge.cli import main

    try:
        main(sys.argv[1:])
    finally:
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in {"openvino", "torch"})
        print("HEAVY", heavy, file=sys.stderr)
    """
)


@pytest.mark.slow
def test_without_the_extra_openvino_is_named_and_onnxruntime_still_runs(
    tmp_path: Path, trained_yolo: Any, val_images: Path
) -> None:
    script = tmp_path / "edge.py"
    script.write_text(BLOCKED_EDGE, encoding="utf-8")
    common = ["--set", f"run.workdir={tmp_path / 'wd'}", "--set", f"infer.model_path={trained_yolo.onnx}",
              "--set", "deploy.edge.source=images", "--set", f"deploy.edge.images_dir={val_images}",
              "--set", "deploy.edge.max_frames=4", "--set", NO_STATS]  # fmt: skip

    def edge(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, str(script), "run", *common, *extra],
                              capture_output=True, text=True, timeout=300, env=edge_env())  # fmt: skip

    asked = edge("--set", "infer.runtime=openvino")
    assert asked.returncode != 0
    assert 'pip install "vision-edge[openvino]"' in asked.stdout + asked.stderr
    auto = edge("--set", "infer.runtime=auto")  # auto with ONNX Runtime alone: no measuring
    assert auto.returncode == 0, auto.stdout + auto.stderr
    assert "frames 4 at" in auto.stdout and "HEAVY []" in auto.stderr
    assert not (tmp_path / "wd" / "tune-cache.json").exists()
