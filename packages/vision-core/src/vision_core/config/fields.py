"""How a config field is declared: a dataclass field with its doc and constraints.

`opt(default, "meaning", ge=1)` keeps the meaning next to the key, as ultralytics'
default.yaml does, and gives the validator what it needs to name a bad value exactly.
"""

from __future__ import annotations

import dataclasses
from typing import Any


def opt(
    default: Any,
    doc: str,
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    env_name: bool = False,
    path_like: bool = False,
    dsn: bool = False,
) -> Any:
    """Declare a config field.

    env_name: the value is the NAME of an environment variable holding a secret.
    dsn: the value may be a database URL whose password must be redacted.
    """
    meta = {
        "doc": doc,
        "ge": ge,
        "gt": gt,
        "le": le,
        "lt": lt,
        "env_name": env_name,
        "path_like": path_like,
        "dsn": dsn,
    }
    if isinstance(default, (list, dict)):
        factory = type(default)
        items = list(default.items()) if isinstance(default, dict) else list(default)
        return dataclasses.field(
            default_factory=lambda: factory(items),
            metadata=meta,
        )
    return dataclasses.field(default=default, metadata=meta)


def section(cls: type, doc: str = "") -> Any:
    """A nested section with its defaults."""
    return dataclasses.field(default_factory=cls, metadata={"doc": doc or (cls.__doc__ or "")})
