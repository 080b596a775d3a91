"""Prometheus metrics through prometheus_client, per app, multiprocess-aware.

Each app gets its own `CollectorRegistry` (several apps can live in one test process).
With `PROMETHEUS_MULTIPROC_DIR` set in the environment before prometheus_client is
imported (vision-server does it for `--workers N > 1`), counters and histograms are kept
in per-process files in that directory and every scrape, whichever worker answers it,
sums all workers. Live gauges (queue depth, outbox) are read at scrape time from the
worker that answers, labelled with its pid.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

__all__ = ["LATENCY_BUCKETS", "PROMETHEUS_MEDIA_TYPE", "Collector", "WebMetrics"]

# text exposition 0.0.4, what generate_latest writes (Litestar adds "; charset=utf-8")
PROMETHEUS_MEDIA_TYPE = "text/plain; version=0.0.4"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

prometheus_client.disable_created_metrics()  # no *_created series next to each counter


class Collector(Protocol):
    def collect(self) -> Iterable[Any]: ...


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or os.environ.get(MULTIPROC_ENV.lower()) or None


class WebMetrics:
    """The HTTP metrics every vision service has, plus a registry for its own.

    `<prefix>_requests_total{method, route, status}`, `<prefix>_request_duration_seconds
    {route}` and `<prefix>_errors_total{kind}`. A service adds its own metrics with
    `counter()` / `histogram()` and live values with `add_collector()`.
    """

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.registry = CollectorRegistry(auto_describe=True)
        self.multiprocess = multiprocess_dir() is not None
        self._live: list[Collector] = []
        self.requests = self.counter(
            "requests", "HTTP requests by route, method and status", ("method", "route", "status")
        )
        self.latency = self.histogram(
            "request_duration_seconds", "HTTP request latency by route", ("route",)
        )
        self.errors = self.counter("errors", "errors answered, by kind", ("kind",))

    def counter(self, name: str, doc: str, labels: Sequence[str] = ()) -> Counter:
        return Counter(f"{self.prefix}_{name}", doc, tuple(labels), registry=self.registry)

    def histogram(
        self,
        name: str,
        doc: str,
        labels: Sequence[str] = (),
        buckets: Sequence[float] = LATENCY_BUCKETS,
    ) -> Histogram:
        return Histogram(
            f"{self.prefix}_{name}",
            doc,
            tuple(labels),
            buckets=tuple(buckets),
            registry=self.registry,
        )

    def add_collector(self, collector: Collector) -> None:
        """Values read at scrape time (gauges of live objects) from this process."""
        self._live.append(collector)
        if not self.multiprocess:
            self.registry.register(collector)

    def error(self, kind: str) -> None:
        self.errors.labels(kind=kind).inc()

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        self.requests.labels(method=method, route=route, status=str(status)).inc()
        self.latency.labels(route=route).observe(seconds)

    def render(self) -> bytes:
        """The text exposition of this app (of every worker, in multiprocess mode)."""
        if not self.multiprocess:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        for collector in self._live:
            registry.register(collector)
        return generate_latest(registry)
