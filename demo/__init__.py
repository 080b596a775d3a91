"""The whole pipeline in one command: `uv run --locked python -m demo [--quick] [--serve]`."""
