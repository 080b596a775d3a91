"""Every command prints the config keys (`<command> keys [PREFIX]`), like `yolo cfg`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent


@pytest.mark.parametrize(
    "command", ["vision-train", "vision-label", "vision-edge", "vision-server", "vision-stats"]
)
def test_every_command_prints_the_config_keys(command: str) -> None:
    res = subprocess.run(
        [str(BIN / command), "keys", "train.epochs"], capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("train.epochs") and "(int)" in res.stdout
