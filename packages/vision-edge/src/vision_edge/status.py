"""`vision-edge status`: what the device's outbox holds, without changing it (the
`dead-letters` command is vision-core's, shared with vision-server)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from vision_core.config.schema import PipelineConfig
from vision_core.stats import Outbox
from vision_edge.runtime import outbox_path


@contextmanager
def open_outbox(cfg: PipelineConfig) -> Iterator[Outbox | None]:
    path = outbox_path(cfg)
    if not path.is_file():
        yield None
        return
    with Outbox(path, max_events=cfg.deploy.stats.outbox_max_events) as outbox:
        yield outbox


def outbox_status(cfg: PipelineConfig) -> dict[str, Any]:
    path = outbox_path(cfg)
    info: dict[str, Any] = {
        "path": str(path),
        "exists": path.is_file(),
        "endpoint": cfg.deploy.stats.endpoint,
        "pending": 0,
        "oldest_age_sec": None,
        "dropped_total": 0,
        "dead_letters": 0,
        "last_error": None,
    }
    with open_outbox(cfg) as outbox:
        if outbox is None:
            return info
        pending = outbox.pending()
        info.update(
            pending=pending,
            oldest_age_sec=round(outbox.oldest_age(), 3) if pending else None,
            dropped_total=outbox.dropped,
            dead_letters=outbox.dead_count(),
            last_error=outbox.last_error,
            integrity=outbox.integrity_check(),
        )
    return info
