"""The run kernel and the registry: run dirs, records on success and failure, lookups."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from vision_core.config import build_config
from vision_core.errors import BackendNotFoundError
from vision_core.kernel import RunContext, VisionKernel, make_run_dir
from vision_core.logging import read_jsonl
from vision_core.registry import KernelRegistry


def _kernel(tmp_path: Path, **backends: Any) -> VisionKernel:
    cfg = build_config({"run": {"name": "t", "workdir": str(tmp_path / "wd")}})
    reg = KernelRegistry(use_entry_points=False)
    for name, fn in backends.items():
        reg.register("trainer", name, fn)
    return VisionKernel(cfg, reg, console=False)


def test_successful_run_writes_metrics_artifacts_and_config(tmp_path: Path) -> None:
    def backend(ctx: RunContext) -> dict[str, Any]:
        ctx.metrics["best_map50"] = 0.9
        ctx.logger.info("train.epoch", "epoch 1 done", epoch=1)
        return {"model_path": str(ctx.run_dir / "model.onnx")}

    result = _kernel(tmp_path, good=backend).run_train("good")
    assert result.ok and result.exit_code == 0 and result.error is None
    run_dir = result.run_context.run_dir
    assert run_dir.parent == tmp_path / "wd" / "runs" and run_dir.name.startswith("t-")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "ok" and metrics["metrics"] == {"best_map50": 0.9}
    assert (
        metrics["mode"] == "train" and metrics["backend"] == "good" and metrics["elapsed_ms"] >= 0
    )
    artifacts = json.loads((run_dir / "artifacts.json").read_text())
    assert artifacts["model_path"].endswith("model.onnx") and artifacts["dry_run"] is False
    assert json.loads((run_dir / "config.json").read_text())["run"]["name"] == "t"
    events = [r["event"] for r in read_jsonl(run_dir / "log.jsonl")]
    assert events == ["train.start", "train.epoch", "train.done"]
    for sub in ("runs", "logs", "data", "outbox"):
        assert (tmp_path / "wd" / sub).is_dir()


def test_config_json_is_in_the_run_dir_before_the_backend_runs(tmp_path: Path) -> None:
    """A server killed with SIGKILL never reaches the end records: its config is there."""
    seen: dict[str, Any] = {}

    def backend(ctx: RunContext) -> None:
        seen.update(json.loads((ctx.run_dir / "config.json").read_text()))
        assert not (ctx.run_dir / "metrics.json").exists()

    assert _kernel(tmp_path, serve=backend).run_train("serve").ok
    assert seen["run"]["name"] == "t"


def test_failed_run_still_writes_records_with_the_error(tmp_path: Path) -> None:
    def backend(ctx: RunContext) -> dict[str, Any]:
        ctx.metrics["epochs_done"] = 2
        raise ValueError("labels/train/a.txt line 3: expected 5 fields, got 4")

    result = _kernel(tmp_path, bad=backend).run_train("bad")
    assert result.status == "failed" and result.exit_code == 1
    run_dir = result.run_context.run_dir
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "failed" and metrics["error_type"] == "ValueError"
    assert "line 3: expected 5 fields" in metrics["error"]
    assert metrics["metrics"] == {"epochs_done": 2}  # what was measured before the failure
    assert json.loads((run_dir / "artifacts.json").read_text())["status"] == "failed"
    last = read_jsonl(run_dir / "log.jsonl")[-1]
    assert last["level"] == "ERROR" and "Traceback" in last["traceback"]


def test_unknown_backend_fails_the_run_and_lists_available(tmp_path: Path) -> None:
    result = _kernel(tmp_path, yolo=lambda ctx: {}, faster_rcnn=lambda ctx: {}).run_train("yolov8")
    assert result.status == "failed"
    assert (
        result.error
        == "unknown trainer 'yolov8' (did you mean 'yolo'?); available: faster_rcnn, yolo"
    )
    assert (result.run_context.run_dir / "metrics.json").is_file()


def test_dry_run_is_labelled_in_both_records(tmp_path: Path) -> None:
    result = _kernel(tmp_path, dry=lambda ctx: {"dry_run": True}).run_train("dry")
    run_dir = result.run_context.run_dir
    assert json.loads((run_dir / "metrics.json").read_text())["dry_run"] is True
    assert json.loads((run_dir / "artifacts.json").read_text())["dry_run"] is True


def test_run_dirs_are_unique_within_one_second(tmp_path: Path) -> None:
    now = datetime(2026, 1, 2, 3, 4, 5)
    ids = [make_run_dir(tmp_path, "exp", now)[0] for _ in range(3)]
    assert ids == ["exp-20260102-030405", "exp-20260102-030405-2", "exp-20260102-030405-3"]


def test_two_processes_never_share_a_run_dir(tmp_path: Path) -> None:
    code = (
        "import sys; from pathlib import Path; from datetime import datetime;"
        "from vision_core.kernel import make_run_dir;"
        "print(make_run_dir(Path(sys.argv[1]), 'p', datetime(2026,1,1))[0])"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True
        )
        for _ in range(4)
    ]
    ids = [p.communicate()[0].strip() for p in procs]
    assert len(set(ids)) == 4 and all(i.startswith("p-20260101-000000") for i in ids)


def test_registry_loads_entry_point_only_when_chosen(tmp_path: Path) -> None:
    """A backend's module is imported on get(), not when the registry is built."""
    code = r"""
import sys
from importlib.metadata import EntryPoint
from vision_core.registry import KernelRegistry
sys.path.insert(0, sys.argv[1])
reg = KernelRegistry(use_entry_points=False)
reg._eps["trainer"]["lazy"] = EntryPoint("lazy", "lazy_backend_mod:run", "vision.trainers")
assert reg.names("trainer") == ["lazy"]
assert "lazy_backend_mod" not in sys.modules
fn = reg.get("trainer", "lazy")
assert "lazy_backend_mod" in sys.modules and fn(None) == {"ok": 1}
print("OK")
"""
    (tmp_path / "lazy_backend_mod.py").write_text("def run(ctx):\n    return {'ok': 1}\n")
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "OK"


def test_registry_rejects_non_callable() -> None:
    with pytest.raises(TypeError, match="must be callable"):
        KernelRegistry(use_entry_points=False).register("trainer", "x", 5)  # type: ignore[arg-type]


def test_unknown_name_with_nothing_installed() -> None:
    with pytest.raises(BackendNotFoundError, match="available: none installed"):
        KernelRegistry(use_entry_points=False).get("deployer", "edge_local")
