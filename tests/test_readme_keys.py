"""vision-core's README holds the full config reference, generated from the schema.

The table between the `config-reference` markers is `reference_table()`; when a key, a
default, a bound or a help text changes in `vision_core/config/schema.py`, regenerate it:

    uv run --locked python tests/test_readme_keys.py
"""

from __future__ import annotations

import dataclasses
import sys
import typing
from pathlib import Path
from typing import Any

from vision_core.config import PipelineConfig, describe_schema

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "packages" / "vision-core" / "README.md"
START = (
    "<!-- config-reference:start (generated: uv run --locked python tests/test_readme_keys.py) -->"
)
END = "<!-- config-reference:end -->"


def _metadata(path: str) -> dict[str, Any]:
    """The field metadata (doc and bounds) of a key path."""
    cls: Any = PipelineConfig
    *sections, name = path.split(".")
    for part in sections:
        cls = typing.get_type_hints(cls)[part.removesuffix("[]")]
        if part.endswith("[]"):  # an array of tables: the item's keys
            cls = typing.get_args(cls)[0]
    field = next(f for f in dataclasses.fields(cls) if f.name == name)
    return dict(field.metadata)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, dict):
        return "{}" if not value else str(value)
    if isinstance(value, list):
        return "[]" if not value else str(value)
    return str(value)


def _type(tname: str, meta: dict[str, Any]) -> str:
    if tname.startswith("'"):
        return " / ".join(f"`{choice.strip(chr(39))}`" for choice in tname.split("|"))
    name = {"str": "string", "int": "integer", "float": "number", "bool": "bool"}.get(
        tname, "table" if tname == "dict" else tname
    )
    bounds = [
        f"{sym} {meta[key]:g}"
        for key, sym in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<"))
        if meta.get(key) is not None
    ]
    if meta.get("env_name"):
        name = "env var name"
    return f"{name} {' and '.join(bounds)}" if bounds else name


def reference_table() -> str:
    rows = [
        "| key | type | default | meaning |",
        "|---|---|---|---|",
    ]
    for path, tname, default, doc in describe_schema():
        meta = _metadata(path)
        cell = doc.replace("|", "\\|").replace("<", "\\<")  # no stray HTML tags
        rows.append(f"| `{path}` | {_type(tname, meta)} | `{_value(default)}` | {cell} |")
    return "\n".join(rows)


def _readme_block(text: str) -> str:
    assert START in text and END in text, f"{README}: the config-reference markers are missing"
    return text.split(START, 1)[1].split(END, 1)[0].strip()


def test_every_key_is_in_the_readme() -> None:
    text = README.read_text(encoding="utf-8")
    missing = [path for path, *_ in describe_schema() if f"`{path}`" not in text]
    assert not missing, f"{README.name} lacks {missing}: run python {Path(__file__).name}"


def test_reference_table_is_current() -> None:
    block = _readme_block(README.read_text(encoding="utf-8"))
    assert block == reference_table(), (
        f"the config reference in {README} is stale: regenerate it with "
        "`uv run --locked python tests/test_readme_keys.py`"
    )


def _write() -> None:
    text = README.read_text(encoding="utf-8")
    head, rest = text.split(START, 1)
    _old, tail = rest.split(END, 1)
    README.write_text(f"{head}{START}\n{reference_table()}\n{END}{tail}", encoding="utf-8")
    print(f"wrote the config reference into {README}")


if __name__ == "__main__":
    _write()
    sys.exit(0)
