"""vision-edge: parse, load the config, call the kernel. No logic here."""

from __future__ import annotations

import click

from vision_core.cli import version_option


@click.group()
@version_option("vision-edge")
def main() -> None:
    """Run a detector on a device: camera, video or images to stats."""
