"""KernelRegistry: backend names -> callables, found through Python entry points.

Packages register their backends under the entry-point groups below, e.g. in
vision-train's pyproject.toml::

    [project.entry-points."vision.trainers"]
    yolo = "vision_train.backends.yolo:BACKEND"

A backend's module is imported only when that backend is chosen, so what is installed is
what is offered and nothing heavy is imported by looking. Direct `register_*` calls (tests,
embedding) take precedence over entry points.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING, Any, Literal

from vision_core.errors import BackendNotFoundError

if TYPE_CHECKING:
    from vision_core.kernel import RunContext

BackendFn = Callable[["RunContext"], dict[str, Any] | None]
Kind = Literal["trainer", "autolabeler", "deployer"]
GROUPS: dict[Kind, str] = {
    "trainer": "vision.trainers",
    "autolabeler": "vision.autolabelers",
    "deployer": "vision.deployers",
}


class KernelRegistry:
    """Maps (kind, name) to a backend callable `fn(ctx: RunContext) -> artifacts`."""

    def __init__(self, *, use_entry_points: bool = True) -> None:
        self._direct: dict[Kind, dict[str, BackendFn]] = {k: {} for k in GROUPS}
        self._eps: dict[Kind, dict[str, EntryPoint]] = {k: {} for k in GROUPS}
        if use_entry_points:
            for kind, group in GROUPS.items():
                for ep in entry_points(group=group):
                    self._eps[kind].setdefault(ep.name, ep)

    def register(self, kind: Kind, name: str, fn: BackendFn) -> None:
        if not callable(fn):
            raise TypeError(f"{kind} backend {name!r} must be callable, got {type(fn).__name__}")
        self._direct[kind][name] = fn

    def names(self, kind: Kind) -> list[str]:
        return sorted(set(self._direct[kind]) | set(self._eps[kind]))

    def get(self, kind: Kind, name: str) -> BackendFn:
        if name in self._direct[kind]:
            return self._direct[kind][name]
        ep = self._eps[kind].get(name)
        if ep is None:
            available = self.names(kind)
            close = difflib.get_close_matches(name, available, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            listed = ", ".join(available) if available else "none installed"
            raise BackendNotFoundError(f"unknown {kind} {name!r}{hint}; available: {listed}")
        fn: BackendFn = ep.load()  # imports the backend's module now, not before
        self._direct[kind][name] = fn
        return fn
