"""The backend list is spelled once, every backend is a TrainBackend, no import cycles."""

from __future__ import annotations

import ast
import typing
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from vision_core.config.schema import TrainSection
from vision_train.backends.base import TrainBackend, backend_names, get_backend

SRC = Path(__file__).resolve().parents[1] / "src" / "vision_train"


def test_registered_trainers_are_exactly_the_schemas_backend_choices() -> None:
    schema = set(typing.get_args(typing.get_type_hints(TrainSection)["backend"]))
    registered = {ep.name for ep in entry_points(group="vision.trainers")}
    assert registered == schema == set(backend_names())


@pytest.mark.parametrize("name", backend_names())
def test_each_registered_trainer_is_a_backend_object_of_that_name(name: str) -> None:
    backend = get_backend(name)
    assert isinstance(backend, TrainBackend) and backend.name == name
    assert all(s.startswith(".") for s in backend.checkpoint_suffixes)


def _module_name(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, modules: set[str]) -> set[str]:
    """vision_train modules `path` imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        found |= {n for n in names if n in modules}
    return found


def test_vision_train_has_no_import_cycle() -> None:
    files = {_module_name(p): p for p in SRC.rglob("*.py")}
    modules = set(files)
    graph = {m: _imports(p, modules) - {m} for m, p in files.items()}
    cycles: list[list[str]] = []
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert cycles == [], " ; ".join(" -> ".join(c) for c in cycles)
    assert len(graph) > 15  # the scan did see the package
