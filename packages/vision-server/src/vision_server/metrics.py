"""Prometheus text exposition (format 0.0.4) without a client library.

Counters, gauges and histograms with labels, thread-safe (the inference thread and the
event loop both record). Each uvicorn worker has its own registry: a scrape reports the
worker that answered it (`pid` in `vision_server_info`); scrape each worker, or run one
worker per container, to see them all.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

__all__ = ["MEDIA_TYPE", "Counter", "Gauge", "Histogram", "Registry", "ServerMetrics"]

MEDIA_TYPE = "text/plain; version=0.0.4"  # Litestar appends "; charset=utf-8"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
Labels = tuple[tuple[str, str], ...]
_M = TypeVar("_M", bound="_Metric")


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels: Labels, extra: Labels = ()) -> str:
    pairs = labels + extra
    if not pairs:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in pairs) + "}"


def _num(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


class _Metric:
    kind = ""

    def __init__(self, name: str, doc: str) -> None:
        self.name, self.doc = name, doc
        self._lock = threading.Lock()

    def header(self) -> list[str]:
        return [f"# HELP {self.name} {self.doc}", f"# TYPE {self.name} {self.kind}"]

    def render(self) -> list[str]:
        raise NotImplementedError


class Counter(_Metric):
    kind = "counter"

    def __init__(self, name: str, doc: str) -> None:
        super().__init__(name, doc)
        self._values: dict[Labels, float] = {}

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + amount

    def value(self, **labels: str) -> float:
        with self._lock:
            return self._values.get(tuple(sorted(labels.items())), 0.0)

    def render(self) -> list[str]:
        with self._lock:
            items = sorted(self._values.items())
        return [f"{self.name}{_labels(k)} {_num(v)}" for k, v in items]


class Gauge(_Metric):
    """A value read when scraped (a callback), optionally per label set.

    `kind="counter"` exposes a counter kept elsewhere (e.g. by the stats sender)."""

    kind = "gauge"

    def __init__(
        self,
        name: str,
        doc: str,
        read: Callable[[], Iterable[tuple[Labels, float]]],
        kind: str = "gauge",
    ) -> None:
        super().__init__(name, doc)
        self._read = read
        self.kind = kind

    def render(self) -> list[str]:
        return [f"{self.name}{_labels(k)} {_num(v)}" for k, v in self._read()]


class Histogram(_Metric):
    kind = "histogram"

    def __init__(self, name: str, doc: str, buckets: Sequence[float] = LATENCY_BUCKETS) -> None:
        super().__init__(name, doc)
        self.buckets = tuple(sorted(buckets))
        self._series: dict[Labels, list[float]] = {}  # bucket counts..., sum, count

    def observe(self, value: float, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        with self._lock:
            row = self._series.get(key)
            if row is None:
                row = self._series[key] = [0.0] * (len(self.buckets) + 2)
            for i, bound in enumerate(self.buckets):
                if value <= bound:
                    row[i] += 1
            row[-2] += value
            row[-1] += 1

    def count(self, **labels: str) -> int:
        with self._lock:
            row = self._series.get(tuple(sorted(labels.items())))
        return int(row[-1]) if row else 0

    def render(self) -> list[str]:
        with self._lock:
            items = sorted((k, list(v)) for k, v in self._series.items())
        lines: list[str] = []
        for key, row in items:
            for bound, n in zip(self.buckets, row, strict=False):
                lines.append(f"{self.name}_bucket{_labels(key, (('le', _num(bound)),))} {_num(n)}")
            lines.append(f"{self.name}_bucket{_labels(key, (('le', '+Inf'),))} {_num(row[-1])}")
            lines.append(f"{self.name}_sum{_labels(key)} {_num(row[-2])}")
            lines.append(f"{self.name}_count{_labels(key)} {_num(row[-1])}")
        return lines


class Registry:
    """The metrics of one process, rendered in registration order."""

    def __init__(self) -> None:
        self._metrics: list[_Metric] = []

    def counter(self, name: str, doc: str) -> Counter:
        return self._add(Counter(name, doc))

    def histogram(
        self, name: str, doc: str, buckets: Sequence[float] = LATENCY_BUCKETS
    ) -> Histogram:
        return self._add(Histogram(name, doc, buckets))

    def gauge(
        self,
        name: str,
        doc: str,
        read: Callable[[], Iterable[tuple[Labels, float]]],
        kind: str = "gauge",
    ) -> Gauge:
        return self._add(Gauge(name, doc, read, kind))

    def _add(self, metric: _M) -> _M:
        self._metrics.append(metric)
        return metric

    def render(self) -> str:
        lines: list[str] = []
        for metric in self._metrics:
            lines.extend(metric.header())
            lines.extend(metric.render())
        return "\n".join(lines) + "\n"


class ServerMetrics:
    """What /metrics shows. Gauges read the live runtime given to `bind` (None: absent)."""

    def __init__(self) -> None:
        self.registry = Registry()
        self._runtime: Any = None
        r = self.registry
        r.gauge("vision_server_info", "the worker: pid, model file and hash, provider", self._info)
        r.gauge("vision_server_uptime_seconds", "seconds since the model was loaded", self._uptime)
        self.requests = r.counter(
            "vision_server_requests_total", "HTTP requests by route, method and status"
        )
        self.latency = r.histogram(
            "vision_server_request_duration_seconds", "HTTP request latency by route"
        )
        self.frames = r.counter("vision_server_frames_total", "frames answered with detections")
        self.stage = r.histogram(
            "vision_server_frame_stage_seconds",
            "time a frame spent per stage (decode, queue, inference, total)",
        )
        self.batch_size = r.histogram(
            "vision_server_batch_size", "frames per model run", (1, 2, 4, 8, 16, 32, 64, 128)
        )
        self.errors = r.counter("vision_server_errors_total", "errors by kind")
        r.gauge("vision_server_queue_depth", "frames admitted and not yet in a batch", self._depth)
        r.gauge("vision_server_queue_capacity", "deploy.remote.queue_size", self._capacity)
        r.gauge("vision_server_batches_running", "batches in the model now", self._busy)
        r.gauge(
            "vision_server_stats_outbox_pending", "stats events not yet delivered", self._pending
        )
        r.gauge(
            "vision_server_stats_outbox_oldest_age_seconds",
            "age of the oldest undelivered stats event",
            self._oldest,
        )
        r.gauge(
            "vision_server_stats_events_total",
            "stats events by outcome (sent, dropped, rejected, send_failures, record_errors)",
            self._stats_counters,
            kind="counter",
        )

    def bind(self, runtime: Any) -> None:
        self._runtime = runtime

    def error(self, kind: str) -> None:
        self.errors.inc(kind=kind)

    def render(self) -> str:
        return self.registry.render()

    # -- gauge readers ---------------------------------------------------------------------------

    def _info(self) -> list[tuple[Labels, float]]:
        rt = self._runtime
        if rt is None:
            return []
        m = rt.model
        labels = (
            ("pid", str(rt.pid)),
            ("model", m.path),
            ("sha256", m.sha256),
            ("provider", m.provider),
            ("batching", m.batching),
            ("runners", str(m.runners)),
        )
        return [(labels, 1.0)]

    def _uptime(self) -> list[tuple[Labels, float]]:
        rt = self._runtime
        return [] if rt is None else [((), round(rt.uptime(), 3))]

    def _depth(self) -> list[tuple[Labels, float]]:
        rt = self._runtime
        return [] if rt is None else [((), float(rt.batcher.depth))]

    def _capacity(self) -> list[tuple[Labels, float]]:
        rt = self._runtime
        return [] if rt is None else [((), float(rt.batcher.queue_size))]

    def _busy(self) -> list[tuple[Labels, float]]:
        rt = self._runtime
        return [] if rt is None else [((), float(rt.batcher.running))]

    def _pending(self) -> list[tuple[Labels, float]]:
        rt = self._runtime
        if rt is None or rt.stats is None:
            return []
        return [((), float(rt.stats.outbox.pending()))]

    def _oldest(self) -> list[tuple[Labels, float]]:
        rt = self._runtime
        if rt is None or rt.stats is None:
            return []
        return [((), round(rt.stats.outbox.oldest_age(), 3))]

    def _stats_counters(self) -> list[tuple[Labels, float]]:
        rt = self._runtime
        if rt is None or rt.stats is None:
            return []
        snap = rt.stats.snapshot()
        rows = [
            ("sent", snap.get("sent_total", 0)),
            ("dropped", snap["dropped_total"]),
            ("rejected", snap.get("rejected_total", 0)),
            ("send_failures", snap.get("failures_total", 0)),
            ("record_errors", snap["record_errors_total"]),
        ]
        return [((("kind", k),), float(v)) for k, v in rows]
