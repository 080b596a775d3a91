"""The figures of one edge run: frames, latency, drops, fallbacks, detections, events.

`EdgeFigures` counts what happens to each frame (`processed`, `dropped`), renders the live
status line and the periodic log line, and turns into the run's metrics.json (`as_metrics`).
It does no I/O of its own beyond the log lines it is handed a logger for.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vision_core.logging import StructuredLogger
from vision_core.pipeline import Outcome

__all__ = ["EdgeFigures", "percentile"]

MAX_LISTED_ERRORS = 50
RECENT = 200  # frames the live figures look back on


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


@dataclass
class EdgeFigures:
    """What an edge run has done so far (see the module docstring)."""

    frames: int = 0  # processed: the model (or the server, or the LLM) answered
    latencies: list[float] = field(default_factory=list)  # prepare + inference, ms
    infer_ms: list[float] = field(default_factory=list)
    dropped: Counter[str] = field(default_factory=Counter)  # frames with no answer, by reason
    fallbacks: Counter[str] = field(default_factory=Counter)  # stream frames run locally
    per_class: Counter[str] = field(default_factory=Counter)
    detections_total: int = 0
    events_committed: int = 0
    annotated: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    started_at: float = field(default_factory=time.perf_counter)  # after the warm-up run

    def processed(self, outcome: Outcome, latency_ms: float) -> None:
        """Count a frame that got its detections."""
        if outcome.fallback is not None:
            self.fallbacks[outcome.fallback] += 1
        self.frames += 1
        self.latencies.append(latency_ms)
        self.infer_ms.append(outcome.infer_ms)
        self.detections_total += len(outcome.detections)
        self.per_class.update(d.class_name for d in outcome.detections)

    def dropped_frame(
        self, reason: str, index: int, name: str, detail: str, log: StructuredLogger
    ) -> None:
        """Count a frame that got no answer; the first few of each reason are logged."""
        self.dropped[reason] += 1
        if len(self.errors) < MAX_LISTED_ERRORS:
            self.errors.append({"frame_index": index, "reason": reason, "error": detail})
        if self.dropped[reason] <= 5 or self.dropped[reason] % 100 == 0:
            log.warn(
                f"edge.frame_{reason}",
                f"frame {index} {name}: {detail}",
                frame_index=index,
                dropped=self.dropped[reason],
            )

    def rate(self) -> float:
        """Frames per second since the first frame after the warm-up run."""
        elapsed = time.perf_counter() - self.started_at
        return self.frames / elapsed if elapsed > 0 else 0.0

    def status_line(self, device_id: str, mode: str, pending: int) -> str:
        return (
            f"\r{device_id} {mode}: {self.frames} frames {self.rate():.1f} fps, "
            f"p50 {percentile(self.latencies[-50:], 50):.1f} ms, {self.detections_total} "
            f"detections, dropped {sum(self.dropped.values())}, outbox {pending}   "
        )

    def progress(self, log: StructuredLogger, pending: int) -> None:
        log.info(
            "edge.progress",
            f"{self.frames} frames at {self.rate():.1f} fps, "
            f"p50 {percentile(self.latencies[-RECENT:], 50):.1f} ms, "
            f"{self.detections_total} detections, {pending} event(s) pending",
            frames=self.frames,
        )

    def as_metrics(self) -> dict[str, Any]:
        lat = self.latencies
        return {
            "frames": self.frames,
            "frames_dropped": sum(self.dropped.values()),
            "dropped": dict(self.dropped),
            "stream_fallbacks": dict(self.fallbacks),
            "latency_ms": {
                "p50": round(percentile(lat, 50), 3),
                "p95": round(percentile(lat, 95), 3),
                "mean": round(float(np.mean(lat)), 3) if lat else 0.0,
            },
            "inference_ms_p50": round(percentile(self.infer_ms, 50), 3),
            "detections_total": self.detections_total,
            "detections_per_class": dict(sorted(self.per_class.items())),
            "events_committed": self.events_committed,
            "annotated_saved": self.annotated,
            "errors": self.errors,
        }
