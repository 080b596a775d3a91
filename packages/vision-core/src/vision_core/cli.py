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


def load_cli_config(config_path: Path | None, overrides: Sequence[str]) -> PipelineConfig:
    """Load the config or exit 2 with the problems listed (key paths and bad values)."""
    try:
        return load_config(config_path, overrides)
    except VisionError as exc:
        click.echo(f"Error: {scrub(str(exc))}", err=True)
        sys.exit(2)


def version_option(package: str) -> Callable[[F], F]:
    return click.version_option(package_name=package, prog_name=package)


def fail(message: str, code: int = 1) -> None:
    click.echo(f"Error: {scrub(message)}", err=True)
    sys.exit(code)
