"""Checkpoint paths: local files only, checked before any work.

vision-train never downloads weights. A missing file or a model-hub name fails at once
(no torch, ultralytics or dataset is touched first) with a message saying what to put where.
"""

from __future__ import annotations

import re
from pathlib import Path

from vision_train.errors import TrainError

# names ultralytics (or torchvision) would fetch from the internet when the file is missing
_HUB_NAME = re.compile(
    r"^(yolo|yolov\d|rtdetr|yoloe|sam|mobile_sam|fastsam|fasterrcnn)[\w.-]*\.(pt|pth)$", re.I
)
OFFLINE_POLICY = "vision-train never downloads weights (offline by design)"


def local_file(path: str, key: str, *, suffixes: tuple[str, ...], scratch_hint: str = "") -> Path:
    """The checkpoint at `path`, or a TrainError that explains the offline policy.

    Cheap on purpose (no torch, no ultralytics, no dataset): backends call it first, so
    a wrong path fails in well under a second instead of after the imports and checks.
    `scratch_hint` ends the message with how to train without a checkpoint.
    """
    p = Path(path).expanduser()
    if not p.is_file():
        what = "a directory, not a file" if p.is_dir() else "file not found"
        where = "" if p.is_absolute() else f" (looked in {Path.cwd()})"
        if _HUB_NAME.match(path.strip()):
            todo = (
                f"{path.strip()!r} looks like a model-hub name, which other tools fetch on first "
                "use: copy that checkpoint onto this machine and give its path"
            )
        else:
            todo = "give the path of a checkpoint file on this machine"
        tail = f", {scratch_hint}" if scratch_hint else ""
        raise TrainError(f"{key}: {what}: {p}{where}. {OFFLINE_POLICY}: {todo}{tail}")
    if p.suffix.lower() not in suffixes:
        raise TrainError(f"{key}: expected a {' or '.join(suffixes)} file, got {p.name}")
    return p.resolve()
