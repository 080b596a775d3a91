"""vision-server: parse, load the config, call the kernel. No logic here."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from vision_core.cli import config_options, echo, keys_command, load_cli_config, version_option
from vision_core.config import PipelineConfig
from vision_core.stats.deadletters import dead_letters_command


@click.group()
@version_option("vision-server")
def main() -> None:
    """Serve frame inference over HTTP (Litestar on uvicorn)."""


@main.command()
@config_options
@click.option("--host", default=None, help="Listen address (default: deploy.remote.host).")
@click.option(
    "--port", default=None, type=click.IntRange(0, 65535), help="Default: deploy.remote.port."
)
@click.option(
    "--workers",
    default=None,
    type=click.IntRange(1, 256),
    help="Worker processes, each with its own model session (default: deploy.remote.workers).",
)
def serve(
    config_path: Path | None,
    overrides: tuple[str, ...],
    host: str | None,
    port: int | None,
    workers: int | None,
) -> None:
    """Run the frame server until Ctrl-C (POST /api/v1/frame, /health, /metrics, /schema)."""
    from vision_core.kernel import VisionKernel

    extra = [
        f"deploy.remote.{key}={value}"
        for key, value in (("host", host), ("port", port), ("workers", workers))
        if value is not None
    ]
    cfg = load_cli_config(config_path, [*overrides, *extra], record_as=("deploy-remote", "remote"))
    result = VisionKernel(cfg).run_deploy_remote()
    if result.error:
        echo(f"Error: {result.error}", err=True)
    echo(f"{result.status}: vision-server run dir {result.run_context.run_dir}", err=True)
    sys.exit(result.exit_code)


def _outboxes(cfg: PipelineConfig) -> list[Path]:
    """Every worker slot's outbox (`<workdir>/outbox/server-<k>.db`)."""
    folder = Path(cfg.run.workdir).resolve() / "outbox"
    return sorted(folder.glob("server-*.db"))


main.add_command(keys_command)
main.add_command(dead_letters_command(_outboxes))
