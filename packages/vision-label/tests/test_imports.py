"""vision-label stays light: no torch, ultralytics or litestar, even when labeling."""

from __future__ import annotations

import subprocess
import sys


def test_cli_and_backends_import_no_heavy_packages() -> None:
    code = (
        "import sys\n"
        "import vision_label.cli, vision_label.model_autolabel, vision_label.llm_autolabel\n"
        "import vision_label.evaluate, vision_core.infer, vision_core.llm\n"
        "from vision_core.registry import KernelRegistry\n"
        "r = KernelRegistry()\n"
        "assert {'model', 'llm'} <= set(r.names('autolabeler')), r.names('autolabeler')\n"
        "r.get('autolabeler', 'model'); r.get('autolabeler', 'llm')\n"
        "print([m for m in ('torch', 'ultralytics', 'litestar') if m in sys.modules])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
