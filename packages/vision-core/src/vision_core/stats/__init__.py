"""Events leaving a producer: the durable outbox, the sender, and the recorder that owns both.

`StatsRecorder` is what the edge and the server use; `Outbox` and `StatsSender` are its
parts (the CLIs read an outbox directly for status and dead letters).
"""

from vision_core.stats.outbox import (
    FRAME_KIND,
    DeadLetter,
    Outbox,
    OutboxError,
    OutboxItem,
    register_kind,
)
from vision_core.stats.recorder import StatsRecorder, stats_api_key
from vision_core.stats.sender import StatsSender, endpoint_for

__all__ = [
    "FRAME_KIND",
    "DeadLetter",
    "Outbox",
    "OutboxError",
    "OutboxItem",
    "StatsRecorder",
    "StatsSender",
    "endpoint_for",
    "register_kind",
    "stats_api_key",
]
