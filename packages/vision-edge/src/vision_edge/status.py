"""`vision-edge status`: what the device's outbox holds, without changing it."""

from __future__ import annotations

from typing import Any

from vision_core.config.schema import PipelineConfig
from vision_core.outbox import Outbox
from vision_edge.runtime import outbox_path


def outbox_status(cfg: PipelineConfig) -> dict[str, Any]:
    path = outbox_path(cfg)
    info: dict[str, Any] = {
        "path": str(path),
        "exists": path.is_file(),
        "endpoint": cfg.deploy.stats.endpoint,
        "pending": 0,
        "oldest_age_sec": None,
        "dropped_total": 0,
        "last_error": None,
    }
    if not path.is_file():
        return info
    with Outbox(path, max_events=cfg.deploy.stats.outbox_max_events) as outbox:
        pending = outbox.pending()
        info.update(
            pending=pending,
            oldest_age_sec=round(outbox.oldest_age(), 3) if pending else None,
            dropped_total=outbox.dropped,
            last_error=outbox.last_error,
            integrity=outbox.integrity_check(),
        )
    return info
