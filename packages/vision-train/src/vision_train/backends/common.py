"""What both training backends share: the device check, the dataset summary and the
dry-run record."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from vision_core.kernel import RunContext
from vision_train.errors import TrainError

if TYPE_CHECKING:
    from vision_core.logging import StructuredLogger
    from vision_train.dataset import DatasetInfo
    from vision_train.resume import Interrupted

_DEVICE = re.compile(r"^(cpu|mps|cuda(:\d+)?|\d+(,\d+)*)$")


def check_device(device: str) -> str:
    """`cpu`, `0`, `0,1` (multi-GPU), `cuda:0`; a GPU that is not there is a clear error."""
    dev = device.strip().lower()
    if not _DEVICE.match(dev):
        raise TrainError(f"train.device: expected cpu, 0, 0,1 or cuda:N, got {device!r}")
    if dev in {"cpu", "mps"}:
        return dev
    import torch

    ids = [int(x) for x in dev.removeprefix("cuda:").split(",")] if dev != "cuda" else [0]
    have = torch.cuda.device_count()
    if not have:
        raise TrainError(
            f"train.device: {device!r} asks for a GPU but torch sees none (use train.device=cpu)"
        )
    missing = [i for i in ids if i >= have]
    if missing:
        raise TrainError(f"train.device: GPU {missing[0]} not found (torch sees {have})")
    return dev


def set_threads(requested: int) -> int:
    """Apply train.threads (0 = leave the backend's choice) and return the count in use.

    Not "every core" by default: ultralytics trains with cores-1 threads (1 on 2 cores)
    because on a busy machine OpenMP threads that wait for each other at every barrier
    run several times slower than one thread (measured here: 2 threads 3.7x slower than
    1 under a load of 11 on 2 cores). With the count fixed, training repeats exactly.
    """
    import torch

    if requested > 0:
        torch.set_num_threads(requested)
    return int(torch.get_num_threads())


def dataset_summary(
    info: DatasetInfo,
    train_images: int,
    prev: Interrupted | None,
    log: StructuredLogger,
    **fields: Any,
) -> dict[str, Any]:
    """What a run trains on (the dataset, its classes and split sizes, then the backend's
    `fields`, then the run it resumes), logged as `train.dataset`."""
    summary: dict[str, Any] = {
        "dataset": str(info.root),
        "classes": info.names,
        "train_images": train_images,
        "val_images": len(info.splits["val"]),
        **fields,
    }
    if prev:
        summary["resumed_from"] = str(prev.run_dir)
    log.info(
        "train.dataset",
        f"dataset ok: {train_images} train / {summary['val_images']} val images, {info.nc} classes",
    )
    return summary


def record_dry_run(ctx: RunContext, summary: dict[str, Any]) -> dict[str, Any]:
    """A dry run: everything validated, nothing trained; said so in both records."""
    ctx.metrics.update({"dry_run": True, **summary})
    ctx.logger.info(
        "train.dry_run", "dry run: config, dataset and weights are valid; nothing trained"
    )
    return {"dry_run": True, "model_path": None, "model_int8_path": None}
