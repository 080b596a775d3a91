"""The answers of the store, the API and the CLI: one msgspec Struct each.

The request side is `vision_core.types.StatsEvent`; these are what vision-stats sends
back, so the OpenAPI schema, the JSON on the wire and the `--json` output agree.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from msgspec import Struct

Bucket = Literal["minute", "hour"]


class InsertResult(Struct):
    """What happened to a batch: which event_ids were stored now, which were known already."""

    received: int
    stored: int
    duplicates: int
    stored_ids: list[str]
    duplicate_ids: list[str]


class Overview(Struct):
    """Fleet totals (optionally of one source and/or a time range)."""

    events_total: int
    detections_total: int
    avg_latency_ms: float | None
    source_count: int
    last_event_ts_utc: datetime | None


class ClassTotal(Struct):
    """Detections of one class, summed over events."""

    class_name: str
    detections: int


class SeriesBucket(Struct):
    """One time bucket: events, detections (total and per class), latency."""

    ts_utc: datetime
    events: int
    detections: int
    avg_latency_ms: float | None
    p50_latency_ms: float | None
    p95_latency_ms: float | None
    by_class: dict[str, int]


class Series(Struct):
    """Buckets from since_utc (inclusive) to until_utc (exclusive), empty ones included."""

    bucket: Bucket
    since_utc: datetime
    until_utc: datetime
    classes: list[str]
    buckets: list[SeriesBucket]


class SourceInfo(Struct):
    """One device: its totals and when it was last heard of (to spot a silent one)."""

    source_id: str
    events: int
    detections: int
    avg_latency_ms: float | None
    last_seen_utc: datetime
    seconds_since_last: float


class PruneResult(Struct):
    """Retention: everything before cutoff_utc was deleted."""

    cutoff_utc: datetime
    events_deleted: int


class DoctorReport(Struct):
    """`vision-stats doctor`: rows outside the bounds, and what was done about them."""

    engine: str
    events: int
    bad_time: int  # ts_us outside what every reader can hold: deleted
    bad_numbers: int  # integers above the caps, negative or non-finite: clamped
    bad_counts: int  # counts_json that does not parse or exceeds the caps: rewritten
    repaired: bool  # False: only counted (--check)
    rollups_rebuilt: bool


class Health(Struct, omit_defaults=True):
    """GET /health: the service answers and its database too. Without the key only
    `status` (liveness); with it the engine and versions as well."""

    status: str
    engine: str | None = None
    schema_version: int | None = None
    version: str | None = None
