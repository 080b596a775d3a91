"""vision-server: a Litestar + uvicorn frame inference server (batching, load shedding).

The public names are imported lazily, so that `vision-server --help` does not pay for
Litestar and ONNX Runtime.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

try:
    __version__ = version("vision-server")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

if TYPE_CHECKING:
    from vision_server.app import create_app
    from vision_server.errors import ServerError
    from vision_server.settings import ServerSettings

__all__ = ["ServerError", "ServerSettings", "__version__", "create_app"]

_LAZY = {
    "create_app": "vision_server.app",
    "ServerError": "vision_server.errors",
    "ServerSettings": "vision_server.settings",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'vision_server' has no attribute {name!r}")
