"""vision-edge runs on a device without torch, torchvision, ultralytics, litestar, and
(in local and stream mode) without the LLM client: a run of the real command in a process
where importing them fails."""

from __future__ import annotations

from pathlib import Path

from tests.fixtures.blocked_imports import DEVICE_BLOCKED, run_blocked

BODY = """
import json
from pathlib import Path

from vision_edge.cli import main

try:
    main(["run", "--set", f"run.workdir={sys.argv[2]}", "--set", f"infer.model_path={sys.argv[1]}",
          "--set", "infer.conf=0.001", "--set", "deploy.edge.source=images",
          "--set", f"deploy.edge.images_dir={sys.argv[3]}", "--set", "deploy.stats.endpoint="])
except SystemExit as exc:
    code = exc.code
(metrics,) = [json.loads(p.read_text()) for p in Path(sys.argv[2]).glob("runs/*/metrics.json")]
RESULT = {"code": code, "status": metrics["status"], "frames": metrics["metrics"]["frames"]}
"""


def test_edge_local_mode_runs_without_heavy_modules_or_openai(
    tiny_yolo_onnx: Path, synth_dataset: Path, tmp_path: Path
) -> None:
    result, imported = run_blocked(
        BODY,
        str(tiny_yolo_onnx),
        str(tmp_path / "wd"),
        str(synth_dataset / "images" / "val"),
        blocked=(*DEVICE_BLOCKED, "openai"),
        tmp_path=tmp_path,
    )
    assert imported == []
    assert result == {"code": 0, "status": "ok", "frames": 16}
