"""vision-server: parse, load the config, call the kernel. No logic here."""

from __future__ import annotations

import click

from vision_core.cli import version_option


@click.group()
@version_option("vision-server")
def main() -> None:
    """Serve frame inference over HTTP (Litestar on uvicorn)."""
