"""Load, override and validate the pipeline config.

Every problem names the full key path and the bad value, e.g.
``train.epochs: expected an integer >= 1, got 'ten'``; unknown keys get a close-match
suggestion. All problems of a file are reported at once.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import re
import tomllib
import types
import typing
import warnings
from collections.abc import Iterable, Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any, Literal, TypeVar

from vision_core.config.schema import RENAMED_KEYS, PipelineConfig
from vision_core.errors import ConfigError
from vision_core.secrets import MASK, redact_dsn

T = TypeVar("T")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


class _CliValue(str):
    """A value typed on the command line: parsed by the schema type, not taken as is."""


class ConfigDeprecationWarning(FutureWarning):
    """A config key was given by its old name (still accepted for one minor version)."""


_MISSING = object()


def _pop_path(data: dict[str, Any], path: str) -> Any:
    """Remove and return the value at a dotted path (_MISSING when it is not there)."""
    *head, last = path.split(".")
    node: Any = data
    for part in head:
        node = node.get(part) if isinstance(node, dict) else None
        if not isinstance(node, dict):
            return _MISSING
    return node.pop(last, _MISSING) if isinstance(node, dict) else _MISSING


def _get_path(data: dict[str, Any], path: str) -> Any:
    node: Any = data
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return node


def _set_path(data: dict[str, Any], path: str, value: Any) -> None:
    *head, last = path.split(".")
    node = data
    for part in head:
        child = node.get(part)
        if not isinstance(child, dict):  # a wrong type here is reported by the validator
            child = node[part] = {} if child is None else child
            if not isinstance(child, dict):
                return
        node = child
    node[last] = value


def apply_renames(data: dict[str, Any]) -> tuple[list[str], list[str]]:
    """Move values given under old key names (RENAMED_KEYS) to their new names, in place.

    Returns (notes, problems): a deprecation note per old key used, and a problem where an
    old key and its new key (or two old keys of one new key, with different values) are
    both set.
    """
    notes: list[str] = []
    problems: list[str] = []
    moved: dict[str, tuple[str, Any]] = {}
    for old, new in RENAMED_KEYS.items():
        value = _pop_path(data, old)
        if value is _MISSING:
            continue
        if new in moved:
            first_old, first_value = moved[new]
            if first_value != value:
                problems.append(
                    f"{old}: renamed to {new}, and {first_old} (also renamed to it) is set to "
                    f"another value ({_show(first_value)} vs {_show(value)}): set {new} once"
                )
            continue
        if _get_path(data, new) is not _MISSING:
            problems.append(f"{old}: renamed to {new}, which is set too: keep only {new}")
            continue
        moved[new] = (old, value)
        _set_path(data, new, value)
        notes.append(f"{old} is deprecated, use {new} (the old name is accepted until 0.3)")
    return notes, problems


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, (list, tuple)):
        return "an array"
    return repr(str(value)) if isinstance(value, str) else repr(value)


def _bounds(meta: Mapping[str, Any]) -> str:
    parts = []
    for key, sym in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
        if meta.get(key) is not None:
            bound = meta[key]
            parts.append(f"{sym} {int(bound) if float(bound).is_integer() else bound}")
    return " and ".join(parts)


def _check_bounds(value: float, meta: Mapping[str, Any]) -> bool:
    ge, gt, le, lt = meta.get("ge"), meta.get("gt"), meta.get("le"), meta.get("lt")
    return not (
        (ge is not None and value < ge)
        or (gt is not None and value <= gt)
        or (le is not None and value > le)
        or (lt is not None and value >= lt)
    )


def _suggest(word: str, choices: Iterable[str]) -> str:
    match = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else ""


@cache
def _hints(cls: Any) -> dict[str, Any]:
    return typing.get_type_hints(cls)


class _Validator:
    def __init__(self) -> None:
        self.problems: list[str] = []

    def fail(self, path: str, msg: str) -> None:
        self.problems.append(f"{path}: {msg}")

    def section(self, cls: Any, raw: Any, path: str) -> Any:
        if not isinstance(raw, Mapping):
            self.fail(path or "<root>", f"expected a table, got {_show(raw)}")
            raw = {}
        fields = {f.name: f for f in dataclasses.fields(cls)}
        hints = _hints(cls)
        kwargs: dict[str, Any] = {}
        for key, value in raw.items():
            here = f"{path}.{key}" if path else str(key)
            if key not in fields:
                self.fail(here, "unknown key" + _suggest(str(key), fields))
                continue
            f = fields[key]
            converted = self.value(hints[key], value, here, f.metadata)
            if converted is not _INVALID:
                kwargs[key] = converted
        return cls(**kwargs)

    def value(self, tp: Any, value: Any, path: str, meta: Mapping[str, Any]) -> Any:
        origin = typing.get_origin(tp)
        if dataclasses.is_dataclass(tp):
            return self.section(tp, value, path)
        if tp is bool:
            return self._bool(value, path)
        if tp is int:
            return self._number(value, path, meta, integer=True)
        if tp is float:
            return self._number(value, path, meta, integer=False)
        if tp is str:
            return self._str(value, path, meta)
        if origin is Literal:
            return self._choice(typing.get_args(tp), value, path)
        if origin is dict:
            return self._class_map(value, path)
        if origin is tuple:
            return self._array(typing.get_args(tp), value, path, meta)
        if origin in (types.UnionType, typing.Union):  # pragma: no cover - not used yet
            return value
        raise TypeError(f"unsupported config type {tp!r} at {path}")  # pragma: no cover

    def _bool(self, value: Any, path: str) -> Any:
        if isinstance(value, bool):
            return value
        if isinstance(value, _CliValue) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        self.fail(path, f"expected true or false, got {_show(value)}")
        return _INVALID

    def _number(self, value: Any, path: str, meta: Mapping[str, Any], *, integer: bool) -> Any:
        kind = "an integer" if integer else "a number"
        bounds = _bounds(meta)
        want = f"expected {kind}{' ' + bounds if bounds else ''}, got {_show(value)}"
        parsed: int | float | None = None
        if isinstance(value, _CliValue):
            try:
                parsed = int(value) if integer else float(value)
            except ValueError:
                parsed = None
        elif isinstance(value, bool):
            parsed = None
        elif isinstance(value, int):
            parsed = value if integer else float(value)
        elif isinstance(value, float) and not integer:
            parsed = value
        if parsed is None or (isinstance(parsed, float) and parsed != parsed):
            self.fail(path, want)
            return _INVALID
        if not _check_bounds(parsed, meta):
            self.fail(path, want)
            return _INVALID
        return parsed

    def _str(self, value: Any, path: str, meta: Mapping[str, Any]) -> Any:
        if not isinstance(value, str):
            self.fail(path, f"expected a string, got {_show(value)}")
            return _INVALID
        value = str(value)
        if meta.get("env_name") and value and not _ENV_NAME.match(value):
            # The value may well be the secret itself pasted by mistake: never echo it.
            self.fail(
                path,
                "expected the NAME of an environment variable (letters, digits, _), got a "
                "value that is not one (not shown: it may be a secret; put the secret in "
                "the environment and its name here)",
            )
            return _INVALID
        return value

    def _choice(self, choices: tuple[Any, ...], value: Any, path: str) -> Any:
        if isinstance(value, str) and value in choices:
            return str(value)
        listed = ", ".join(repr(c) for c in choices)
        hint = _suggest(value, [str(c) for c in choices]) if isinstance(value, str) else ""
        self.fail(path, f"expected one of {listed}, got {_show(value)}{hint}")
        return _INVALID

    def _array(self, args: tuple[Any, ...], value: Any, path: str, meta: Mapping[str, Any]) -> Any:
        """A TOML array: `tuple[T, ...]` (any length, items checked as T, named `key[i]`) or
        `tuple[T1, T2]` (exactly that many items). On the command line: JSON."""
        variable = len(args) == 2 and args[1] is Ellipsis
        want = (
            f"an array of {_describe_type(args[0])}"
            if variable
            else f"an array of {len(args)} {_describe_type(args[0])}"
        )
        if isinstance(value, _CliValue):
            try:
                value = json.loads(value.strip() or "[]")
            except json.JSONDecodeError as exc:
                self.fail(path, f"expected {want} as JSON, got {_show(str(value))} ({exc.msg})")
                return _INVALID
            value = _cli_items(value)
        if not isinstance(value, (list, tuple)):
            self.fail(path, f"expected {want}, got {_show(value)}")
            return _INVALID
        if not variable and len(value) != len(args):
            shown = "[" + ", ".join(_show(v) for v in value) + "]"
            self.fail(path, f"expected {want}, got {shown}")
            return _INVALID
        out = []
        ok = True
        for i, item in enumerate(value):
            converted = self.value(args[0] if variable else args[i], item, f"{path}[{i}]", meta)
            if converted is _INVALID:
                ok = False
            out.append(converted)
        return tuple(out) if ok else _INVALID

    def _class_map(self, value: Any, path: str) -> Any:
        if isinstance(value, _CliValue):
            text = value.strip()
            try:
                value = (
                    json.loads(text)
                    if text[:1] in "[{"
                    else [s.strip() for s in text.split(",") if s.strip()]
                )
            except json.JSONDecodeError as exc:
                self.fail(
                    path,
                    f"expected a JSON table/array or comma-separated names, got {_show(text)} ({exc.msg})",
                )
                return _INVALID
        if isinstance(value, list):
            value = dict(enumerate(value))
        if not isinstance(value, Mapping):
            self.fail(
                path, f"expected a table of id = name or an array of names, got {_show(value)}"
            )
            return _INVALID
        out: dict[int, str] = {}
        ok = True
        for key, name in value.items():
            here = f"{path}.{key}"
            try:
                cid = int(key)
                if cid < 0 or isinstance(key, bool):
                    raise ValueError
            except (TypeError, ValueError):
                self.fail(here, f"expected a class id (an integer >= 0) as key, got {_show(key)}")
                ok = False
                continue
            if not isinstance(name, str) or not name.strip():
                self.fail(here, f"expected a non-empty class name, got {_show(name)}")
                ok = False
                continue
            out[cid] = str(name)
        if ok and out and sorted(out) != list(range(len(out))):
            self.fail(path, f"class ids must be 0..{len(out) - 1} without gaps, got {sorted(out)}")
            return _INVALID
        return out if ok else _INVALID


_INVALID = object()


def _cli_items(value: Any) -> Any:
    """Items of an array given as JSON on the command line are typed like TOML values."""
    if isinstance(value, list):
        return [_cli_items(v) for v in value]
    if isinstance(value, dict):
        return {k: _cli_items(v) for k, v in value.items()}
    return value


def _describe_type(tp: Any) -> str:
    """How a config type reads in a message or the README: 'numbers', 'tables', '[x, y]'."""
    if dataclasses.is_dataclass(tp):
        return "tables"
    if typing.get_origin(tp) is tuple:
        args = typing.get_args(tp)
        if args == (float, float):
            return "[x, y]"
        return "arrays"
    return {bool: "booleans", int: "integers", float: "numbers", str: "strings"}.get(tp, "values")


def _cross_checks(cfg: PipelineConfig) -> list[str]:
    problems = []
    edge = cfg.deploy.edge
    if edge.source == "video" and not edge.video_path:
        problems.append("deploy.edge.video_path: required when deploy.edge.source = 'video'")
    if cfg.train.yolo.imgsz % 32:
        problems.append(f"train.yolo.imgsz: expected a multiple of 32, got {cfg.train.yolo.imgsz}")
    if not cfg.stats.db.strip():
        problems.append("stats.db: expected a SQLite path or a postgresql:// DSN, got ''")
    if not cfg.run.name.strip() or any(c in cfg.run.name for c in "/\\"):
        problems.append(f"run.name: expected a name without slashes, got {_show(cfg.run.name)}")
    # lines and zones: geometry and names (pure Python: loading a config never needs numpy)
    from vision_core.track.regions import check_track_section

    problems.extend(check_track_section(cfg.track, class_names=cfg.class_map.values()))
    if cfg.track.enabled and edge.mode == "llm":
        problems.append(
            "track.enabled: tracking needs every frame's boxes and deploy.edge.mode = 'llm' "
            "sees a few frames a minute; set track.enabled = false or use mode 'local' or "
            "'stream'"
        )
    return problems


def parse_override(item: str) -> tuple[list[str], _CliValue]:
    """Split ``key.path=value`` into its path parts and the (untyped) value."""
    key, sep, value = item.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(f"--set {item!r}: expected key.path=value, e.g. train.epochs=5")
    return key.split("."), _CliValue(value.strip())


def apply_overrides(raw: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Return a copy of `raw` with each ``key.path=value`` set (typed later by the schema)."""
    out: dict[str, Any] = json.loads(json.dumps(raw, default=str)) if raw else {}
    for item in overrides:
        parts, value = parse_override(item)
        node = out
        for i, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif not isinstance(child, dict):
                where = ".".join(parts[: i + 1])
                raise ConfigError(f"--set {item!r}: {where} is a value, not a table")
            node = child
        node[parts[-1]] = value
    return out


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Read a TOML (or YAML) file into a dict; syntax errors name the file and line."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file not found: {p}")
    text = p.read_text(encoding="utf-8")
    if p.suffix.lower() in {".yaml", ".yml"}:
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{p}: YAML syntax error: {exc}") from None
        data = {} if data is None else data
        if not isinstance(data, dict):
            raise ConfigError(
                f"{p}: expected a mapping at the top level, got {type(data).__name__}"
            )
        return data
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: TOML syntax error: {exc}") from None


def build_config(
    raw: Mapping[str, Any] | None = None,
    overrides: Sequence[str] = (),
    *,
    source: str | None = None,
) -> PipelineConfig:
    """Validate a raw mapping (plus overrides) into a PipelineConfig or raise ConfigError."""
    data = apply_overrides(raw or {}, overrides)
    notes, renamed_problems = apply_renames(data)
    if renamed_problems:
        raise ConfigError(renamed_problems, source=source)
    for note in notes:
        warnings.warn(note, ConfigDeprecationWarning, stacklevel=3)
    v = _Validator()
    cfg: PipelineConfig = v.section(PipelineConfig, data, "")
    if v.problems:
        raise ConfigError(v.problems, source=source)
    problems = _cross_checks(cfg)
    if problems:
        raise ConfigError(problems, source=source)
    return cfg


def load_config(path: str | Path | None = None, overrides: Sequence[str] = ()) -> PipelineConfig:
    """The config every CLI uses: the file (if any, TOML or YAML) then ``--set`` overrides."""
    raw = read_config_file(path) if path else {}
    return build_config(raw, overrides, source=str(path) if path else None)


def config_to_dict(cfg: Any, *, redact: bool = True) -> dict[str, Any]:
    """The resolved config as plain data (secrets redacted: DSN and URL passwords)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            out[f.name] = config_to_dict(value, redact=redact)
        elif isinstance(value, tuple):
            out[f.name] = _plain(value, redact=redact)
        elif isinstance(value, dict):
            out[f.name] = {str(k): v for k, v in value.items()}
        elif redact and isinstance(value, str) and (f.metadata.get("dsn") or "://" in value):
            out[f.name] = redact_dsn(value)  # any URL may carry a password (a camera's)
        else:
            out[f.name] = value
    return out


def _plain(value: Any, *, redact: bool) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return config_to_dict(value, redact=redact)
    if isinstance(value, tuple):
        return [_plain(v, redact=redact) for v in value]
    return value


def describe_schema(cls: Any = PipelineConfig, prefix: str = "") -> list[tuple[str, str, Any, str]]:
    """Every key as (key.path, type, default, doc): for docs and `--help`.

    The keys of the tables in an array of tables read `track.lines[].name`.
    """
    rows: list[tuple[str, str, Any, str]] = []
    hints = _hints(cls)
    for f in dataclasses.fields(cls):
        path = f"{prefix}{f.name}"
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            rows.extend(describe_schema(tp, path + "."))
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[operator]
        origin = typing.get_origin(tp)
        if origin is Literal:
            tname = "|".join(map(repr, typing.get_args(tp)))
        elif origin is tuple:
            tname = f"array of {_describe_type(typing.get_args(tp)[0])}"
        else:
            tname = getattr(tp, "__name__", str(tp))
        if isinstance(default, tuple):
            default = _plain(default, redact=False)
        rows.append((path, tname, default, f.metadata.get("doc", "")))
        if origin is tuple and dataclasses.is_dataclass(item := typing.get_args(tp)[0]):
            rows.extend(describe_schema(item, path + "[]."))
    return rows


__all__ = [
    "MASK",
    "ConfigDeprecationWarning",
    "apply_overrides",
    "apply_renames",
    "build_config",
    "config_to_dict",
    "describe_schema",
    "load_config",
    "parse_override",
    "read_config_file",
]
