"""OpenVINO without its usage telemetry.

`import openvino` sets up `openvino_telemetry` (for its model conversion tool), which
sends usage events to Google Analytics by default unless it believes it runs in CI or the
user ran its `opt_in_out --opt_out`. Nothing of ours may reach the network (devices and
training alike), so every import of OpenVINO goes through `quiet_openvino()`: the import
sees `CI=true` (OpenVINO's own opt-out condition; the variable is restored right after),
and the telemetry singleton it created is told there is no consent. NNCF's telemetry is
turned off by `NNCF_CI` where vision-train imports it.
"""

from __future__ import annotations

import contextlib
import importlib
import os
from collections.abc import Iterator

__all__ = ["quiet_openvino"]


@contextlib.contextmanager
def quiet_openvino() -> Iterator[None]:
    """Import OpenVINO inside this block: its telemetry stays off for the process."""
    before = os.environ.get("CI")
    os.environ["CI"] = "true"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("CI", None)
        else:
            os.environ["CI"] = before
        with contextlib.suppress(Exception):  # an OpenVINO without the telemetry package
            telemetry = importlib.import_module("openvino_telemetry").Telemetry
            instance = getattr(telemetry, "_SingletonMetaClass__single_instance", None)
            if instance is not None:
                instance.consent = False
