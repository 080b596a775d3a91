"""The benchmark scripts and the main job import only names vision packages still have.

Their imports mostly sit inside functions (a benchmark imports ultralytics only where it
times it), so neither ruff nor a plain import of the script sees a name that moved; this
walks every `from vision_x... import name` of them and resolves it.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted([*ROOT.glob("benchmarks/*.py"), *ROOT.glob("demo/*.py")])


@pytest.mark.parametrize("script", SCRIPTS, ids=[p.name for p in SCRIPTS])
def test_every_vision_name_a_script_imports_exists(script: Path) -> None:
    missing = []
    for node in ast.walk(ast.parse(script.read_text(encoding="utf-8"))):
        if not (isinstance(node, ast.ImportFrom) and (node.module or "").startswith("vision_")):
            continue
        module = importlib.import_module(str(node.module))
        for alias in node.names:
            if hasattr(module, alias.name):
                continue
            try:  # a submodule: `from vision_core import track`
                importlib.import_module(f"{node.module}.{alias.name}")
            except ImportError:
                missing.append(f"line {node.lineno}: from {node.module} import {alias.name}")
    assert missing == [], f"{script.name}: {missing}"
