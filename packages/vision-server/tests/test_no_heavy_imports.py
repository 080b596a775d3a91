"""vision-server runs on inference hosts without torch, torchvision or ultralytics."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

BLOCKED = ("torch", "torchvision", "ultralytics")

SCRIPT = textwrap.dedent(
    """
    import importlib.abc, json, sys

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {blocked!r}:
                raise ImportError(f"{{name}} is blocked on this host")
            return None

    sys.meta_path.insert(0, Block())

    import cv2
    import numpy as np
    from litestar.testing import TestClient

    from vision_core.config import build_config
    from vision_server.app import create_app
    from vision_server.cli import main  # noqa: F401
    from vision_server.deploy import run_remote_deploy  # noqa: F401
    from vision_server.settings import ServerSettings

    cfg = build_config({{
        "infer": {{"model_path": sys.argv[1]}},
        "run": {{"workdir": sys.argv[2]}},
        "deploy": {{"stats": {{"endpoint": ""}}}},
    }})
    settings = ServerSettings.from_config(cfg, environ={{"VISION_INGEST_API_KEY": "k" * 16}})
    ok, png = cv2.imencode(".png", np.zeros((32, 32, 3), np.uint8))
    with TestClient(create_app(settings)) as c:
        r = c.post(
            "/api/v1/frame",
            content=png.tobytes(),
            headers={{"X-API-Key": "k" * 16, "Content-Type": "image/png", "X-Source-Id": "s"}},
        )
    print(json.dumps({{
        "status": r.status_code,
        "heavy": sorted(m for m in sys.modules if m.split(".")[0] in {blocked!r}),
    }}))
    """
)


def test_server_runs_without_torch_or_ultralytics(graph_model: Path, tmp_path: Path) -> None:
    script = tmp_path / "host.py"
    script.write_text(SCRIPT.format(blocked=BLOCKED), encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, str(script), str(graph_model), str(tmp_path / "work")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result == {"status": 200, "heavy": []}
