"""vision-stats stays a light install: none of the ML stack is imported, ever."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("torch", "ultralytics", "onnxruntime", "numpy", "cv2")


def test_store_api_cli_and_service_import_no_ml_stack() -> None:
    code = (
        "import sys\n"
        "import vision_stats, vision_stats.api, vision_stats.cli, vision_stats.service\n"
        "import vision_stats.store.sqlite, vision_stats.store.postgres\n"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_importing_the_package_does_not_import_the_web_stack() -> None:
    code = (
        "import sys, vision_stats, vision_stats.decode, vision_stats.store.sqlite\n"
        "print('litestar' in sys.modules, 'uvicorn' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
