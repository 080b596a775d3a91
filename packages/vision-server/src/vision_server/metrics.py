"""What vision-server's /metrics shows, on the shared prometheus_client setup.

The HTTP metrics (`vision_server_requests_total`, `..._request_duration_seconds`,
`..._errors_total`) come from `vision_core.web.WebMetrics`; the frame metrics are added
here. With `--workers N` the counters and histograms are kept per process in
PROMETHEUS_MULTIPROC_DIR and every scrape sums all workers. The live gauges (queue, model,
outbox) are read at scrape time from the worker that answers (its pid is a label of
`vision_server_info`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from vision_core.web import PROMETHEUS_MEDIA_TYPE, WebMetrics

__all__ = ["MEDIA_TYPE", "ServerMetrics"]

MEDIA_TYPE = PROMETHEUS_MEDIA_TYPE


class ServerMetrics:
    """The frame metrics and the live gauges; `bind` gives them the runtime to read."""

    def __init__(self, web: WebMetrics) -> None:
        self.web = web
        self._runtime: Any = None
        self.frames = web.counter("frames", "frames answered with detections")
        self.stage = web.histogram(
            "frame_stage_seconds",
            "time a frame spent per stage (decode, queue, inference, total)",
            ("stage",),
        )
        self.batch_size = web.histogram(
            "batch_size", "frames per model run", (), (1, 2, 4, 8, 16, 32, 64, 128)
        )
        web.add_collector(_Live(self))

    def bind(self, runtime: Any) -> None:
        self._runtime = runtime

    def error(self, kind: str) -> None:
        self.web.error(kind)

    def render(self) -> bytes:
        return self.web.render()


class _Live:
    """Gauges read from the live runtime at scrape time (absent before it is bound)."""

    def __init__(self, owner: ServerMetrics) -> None:
        self._owner = owner

    def collect(self) -> Iterator[Any]:
        rt = self._owner._runtime
        if rt is None:
            return
        m = rt.model
        info = GaugeMetricFamily(
            "vision_server_info",
            "the worker: pid, model file name and hash, provider",
            labels=["pid", "model", "sha256", "provider", "batching", "runners"],
        )
        info.add_metric(
            [str(rt.pid), Path(m.path).name, m.sha256, m.provider, m.batching, str(m.runners)],
            1.0,
        )
        yield info
        yield _gauge(
            "vision_server_uptime_seconds", "seconds since the model was loaded", rt.uptime()
        )
        yield _gauge(
            "vision_server_queue_depth", "frames admitted and not yet in a batch", rt.batcher.depth
        )
        yield _gauge(
            "vision_server_queue_capacity", "deploy.remote.queue_size", rt.batcher.queue_size
        )
        yield _gauge(
            "vision_server_batches_running", "batches in the model now", rt.batcher.running
        )
        stats = rt.stats
        if stats is None:
            return
        snap: dict[str, Any] = stats.snapshot()
        yield _gauge(
            "vision_server_stats_outbox_pending",
            "stats events not yet delivered",
            snap.get("pending", 0),
        )
        oldest = getattr(getattr(stats, "outbox", None), "oldest_age", None)
        if oldest is not None:
            yield _gauge(
                "vision_server_stats_outbox_oldest_age_seconds",
                "age of the oldest undelivered stats event",
                oldest(),
            )
        yield _gauge(
            "vision_server_stats_outbox_dead_letters",
            "stats events the stats service refused for good (kept aside in the outbox)",
            snap.get("dead_letters", 0),
        )
        events = CounterMetricFamily(
            "vision_server_stats_events",
            "stats events by outcome (sent, dropped, rejected, send_failures, record_errors)",
            labels=["kind"],
        )
        for kind, key in (
            ("sent", "sent_total"),
            ("dropped", "dropped_total"),
            ("rejected", "rejected_total"),
            ("send_failures", "failures_total"),
            ("record_errors", "record_errors_total"),
        ):
            events.add_metric([kind], float(snap.get(key, 0) or 0))
        yield events


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=float(value or 0))
