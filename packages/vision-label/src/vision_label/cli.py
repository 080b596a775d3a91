"""vision-label: parse, load the config, call the kernel. No logic here."""

from __future__ import annotations

import click

from vision_core.cli import version_option


@click.group()
@version_option("vision-label")
def main() -> None:
    """Autolabel images into a YOLO dataset with an ONNX model or a vision LLM."""
