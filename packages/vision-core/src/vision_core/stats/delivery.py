"""What the HTTP sender and the MQTT publisher share: how a batch is chosen.

A batch holds events of one kind (one route, one topic, one JSON array). It is taken from
a window of the oldest pending events, `PEEK_BATCHES` batches deep: every event of the
oldest event's kind in that window, up to the batch size, in order of capture. The events
of other kinds in the window wait for the next batches (the oldest of them is the next
batch's first), so interleaved kinds (a frame event per frame, a crossing now and then)
still go in full batches, and each kind keeps its order of capture.
"""

from __future__ import annotations

from collections.abc import Sequence

from vision_core.stats.outbox import OutboxItem

__all__ = ["PEEK_BATCHES", "one_kind"]

PEEK_BATCHES = 4  # the window a batch is taken from, in batches


def one_kind(window: Sequence[OutboxItem], limit: int) -> list[OutboxItem]:
    """Up to `limit` events of `window` (oldest first) of the first event's kind, in order."""
    if not window:
        return []
    kind = window[0].kind
    return [it for it in window if it.kind == kind][:limit]
