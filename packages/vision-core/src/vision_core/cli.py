"""Click helpers every package's CLI shares: --config, --set, --version, error exits."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click

from vision_core.config import PipelineConfig, load_config
from vision_core.errors import VisionError
from vision_core.secrets import scrub

F = TypeVar("F", bound=Callable[..., Any])


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
        return load_config(config_path, overrides)
    except VisionError as exc:
        click.echo(f"Error: {scrub(str(exc))}", err=True)
        if record_as is not None:
            run_dir = _record_config_failure(config_path, overrides, record_as, exc)
            if run_dir is not None:
                click.echo(f"failed: run dir {run_dir}", err=True)
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
    click.echo(f"Error: {scrub(message)}", err=True)
    sys.exit(code)
