"""Click helpers every package's CLI shares: --config, --set, --version, error exits."""

from __future__ import annotations

import json
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from vision_core.config import (
    RENAMED_KEYS,
    ConfigDeprecationWarning,
    PipelineConfig,
    describe_schema,
    load_config,
)
from vision_core.errors import VisionError
from vision_core.secrets import scrub
from vision_core.textsafe import safe_json, safe_text

if TYPE_CHECKING:
    from vision_core.kernel import RunResult

F = TypeVar("F", bound=Callable[..., Any])


def echo(text: object = "", *, err: bool = False) -> None:
    """Print text that may hold data from elsewhere (source ids, class names, file names,
    error messages): every line terminal-safe (`vision_core.textsafe`), on a terminal and in
    a pipe alike; the line breaks of the text itself are kept."""
    lines = str(text).split("\n")
    click.echo("\n".join(safe_text(line) for line in lines), err=err)


def echo_json(obj: object) -> None:
    """Print `obj` as indented JSON, terminal-safe (C1 and bidi controls escaped)."""
    click.echo(safe_json(json.dumps(obj, indent=2, default=str)))


def config_options(fn: F) -> F:
    """Add `--config FILE` and repeatable `--set key.path=value` to a command."""
    fn = click.option(
        "--set",
        "overrides",
        multiple=True,
        metavar="KEY.PATH=VALUE",
        help="Override a config key, typed by the schema (repeatable), e.g. --set train.epochs=5.",
    )(fn)
    fn = click.option(
        "--config",
        "config_path",
        type=click.Path(path_type=Path, dir_okay=False),
        default=None,
        help="Pipeline config file (TOML or YAML). Without it, the embedded defaults.",
    )(fn)
    return fn


def load_cli_config(
    config_path: Path | None,
    overrides: Sequence[str],
    *,
    record_as: tuple[str, str] | None = None,
) -> PipelineConfig:
    """Load the config or exit 2 with the problems listed (key paths and bad values).

    `record_as=(mode, backend)`: a command that runs through the kernel still leaves a
    failed run dir with metrics.json when its config is invalid.
    """
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConfigDeprecationWarning)
            cfg = load_config(config_path, overrides)
        for w in caught:
            if issubclass(w.category, ConfigDeprecationWarning):
                echo(f"warning: {w.message}", err=True)
            else:  # not ours: hand it on as it came
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        return cfg
    except VisionError as exc:
        echo(f"Error: {scrub(str(exc))}", err=True)
        if record_as is not None:
            run_dir = _record_config_failure(config_path, overrides, record_as, exc)
            if run_dir is not None:
                echo(f"failed: run dir {run_dir}", err=True)
        sys.exit(2)


def _record_config_failure(
    config_path: Path | None, overrides: Sequence[str], record_as: tuple[str, str], exc: Exception
) -> Path | None:
    """Best effort: take run.workdir/run.name from the raw config where they are usable."""
    from vision_core.config import RunSection, apply_overrides, read_config_file
    from vision_core.kernel import record_failed_run

    workdir, name = RunSection().workdir, RunSection().name
    try:
        raw = apply_overrides(read_config_file(config_path) if config_path else {}, overrides)
        run = raw.get("run", {})
        if isinstance(run, dict):
            if isinstance(run.get("workdir"), str):
                workdir = str(run["workdir"])
            if isinstance(run.get("name"), str) and "/" not in run["name"]:
                name = str(run["name"])
    except VisionError:
        pass
    try:
        return record_failed_run(str(workdir), str(name), *record_as, exc)
    except OSError:
        return None


def version_option(package: str) -> Callable[[F], F]:
    return click.version_option(package_name=package, prog_name=package)


def fail(message: str, code: int = 1) -> None:
    echo(f"Error: {scrub(message)}", err=True)
    sys.exit(code)


def _show_default(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, dict):
        return json.dumps({str(k): v for k, v in value.items()})
    return str(value)


@click.command("keys")
@click.argument("prefix", required=False, default="")
@click.option("--json", "as_json", is_flag=True, help="Print the keys as JSON.")
def keys_command(prefix: str, as_json: bool) -> None:
    """Every config key with its type, default and meaning (PREFIX: e.g. deploy.edge).

    Old key names still accepted are listed last, with the key that replaced them.
    """
    rows = [r for r in describe_schema() if r[0].startswith(prefix)]
    renamed = {old: new for old, new in RENAMED_KEYS.items() if new.startswith(prefix)}
    if not rows and not renamed:
        fail(f"no config key starts with {prefix!r}", code=2)
    if as_json:
        out = {
            "keys": [{"key": k, "type": t, "default": d, "meaning": doc} for k, t, d, doc in rows],
            "renamed": renamed,
        }
        echo_json(out)
        return
    width = max((len(r[0]) for r in rows), default=0)
    for key, tname, default, doc in rows:
        click.echo(f"{key:<{width}}  ({tname}) {_show_default(default)}  # {doc}")
    if renamed:
        click.echo("\nrenamed (old names still accepted until 0.3, with a warning):")
        for old, new in renamed.items():
            click.echo(f"  {old} -> {new}")


def summary_head(result: RunResult, job: str) -> list[str]:
    """The first lines of a run's short human summary: status, job, backend, time, error."""
    lines = [f"{result.status}: {job} ({result.backend}) in {result.elapsed_ms / 1000:.1f}s"]
    if result.error:
        lines.append(f"  error: {result.error}")
    return lines


def detections_line(metrics: dict[str, Any]) -> str:
    """`  detections N: class n, ...` of a run's metrics."""
    per_class = ", ".join(f"{k} {v}" for k, v in metrics.get("detections_per_class", {}).items())
    return f"  detections {metrics.get('detections_total', 0)}: {per_class or 'none'}"


def echo_summary(result: RunResult, lines: list[str]) -> None:
    """Print a summary's lines and where the full figures are (the run dir)."""
    echo("\n".join([*lines, f"  run dir: {result.run_context.run_dir}"]))
