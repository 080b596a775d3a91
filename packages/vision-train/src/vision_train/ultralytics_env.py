"""Make ultralytics work with no network, ever.

ultralytics reaches for the network by itself: hub/settings sync, the Arial font for plots,
AMP-check weights on CUDA, pip auto-install of missing requirements, online checks. Call
`offline_ultralytics(workdir)` BEFORE importing ultralytics: it points its config dir into
the workdir, turns all of that off, and replaces the AMP check (which downloads weights)
with a local decision.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

_DONE = False


def offline_ultralytics(config_dir: str | Path | None = None) -> Any:
    """Configure ultralytics for offline use; returns the imported `ultralytics` module."""
    global _DONE
    os.environ["YOLO_OFFLINE"] = "1"
    os.environ["YOLO_AUTOINSTALL"] = "false"
    os.environ.setdefault("YOLO_VERBOSE", "true")
    if config_dir is not None:
        path = Path(config_dir)
        path.mkdir(parents=True, exist_ok=True)
        os.environ.setdefault("YOLO_CONFIG_DIR", str(path))
    import ultralytics
    from ultralytics.utils import SETTINGS

    _provide_fonts()
    if not _DONE:
        wanted: dict[str, Any] = {
            "sync": False,
            "vscode_msg": False,
            "openvino_msg": False,
            **dict.fromkeys(
                ("tensorboard", "wandb", "mlflow", "comet", "clearml", "dvc", "neptune", "raytune"),
                False,
            ),
        }
        if config_dir is not None:
            base = Path(config_dir)
            wanted |= {
                "datasets_dir": str(base / "datasets"),
                "weights_dir": str(base / "weights"),
                "runs_dir": str(base / "runs"),
            }
        SETTINGS.update({k: v for k, v in wanted.items() if k in SETTINGS})
        try:  # the AMP check downloads a reference model; decide locally instead
            import ultralytics.engine.trainer as trainer_mod

            trainer_mod.check_amp = lambda model: True
        except (ImportError, AttributeError):  # pragma: no cover - layout changed
            pass
        _DONE = True
    return ultralytics


def _provide_fonts() -> None:
    """ultralytics' dataset check looks for Arial.ttf and downloads it when missing (even
    with plots off): give it matplotlib's bundled DejaVuSans under those names."""
    import shutil

    from ultralytics.utils import USER_CONFIG_DIR

    try:
        import matplotlib

        src = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    except ImportError:  # pragma: no cover - matplotlib is an ultralytics dependency
        return
    if not src.is_file():  # pragma: no cover
        return
    USER_CONFIG_DIR.mkdir(parents=True, exist_ok=True)
    for name in ("Arial.ttf", "Arial.Unicode.ttf"):
        target = USER_CONFIG_DIR / name
        if not target.exists():
            shutil.copyfile(src, target)
