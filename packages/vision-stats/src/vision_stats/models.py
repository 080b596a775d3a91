"""The answers of the store, the API and the CLI: one msgspec Struct each.

The request side is `vision_core.types.StatsEvent`; these are what vision-stats sends
back, so the OpenAPI schema, the JSON on the wire and the `--json` output agree.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import msgspec
from msgspec import Struct

Bucket = Literal["minute", "hour"]
#: the buckets of the tracking reads (UTC days for "day")
TrackBucket = Literal["minute", "hour", "day"]


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
    """Retention: everything before cutoff_utc was deleted (tracking events: before
    track_cutoff_utc, the hour that holds cutoff_utc, because their rollups are hourly)."""

    cutoff_utc: datetime
    events_deleted: int
    track_cutoff_utc: datetime | None = None
    track_events_deleted: int = 0


class DoctorReport(Struct):
    """`vision-stats doctor`: rows outside the bounds, and what was done about them."""

    engine: str
    events: int
    bad_time: int  # ts_us outside what every reader can hold: deleted
    bad_numbers: int  # integers above the caps, negative or non-finite: clamped
    bad_counts: int  # counts_json that does not parse or exceeds the caps: rewritten
    repaired: bool  # False: only counted (--check)
    rollups_rebuilt: bool
    track_rows: int = 0  # crossings, zone events, summaries and their class rows read
    track_deleted: int = 0  # time no reader can hold, unknown direction/action, orphan: deleted
    track_clamped: int = 0  # numbers or flags outside the bounds: clamped


class Health(Struct, omit_defaults=True):
    """GET /health: the service answers and its database too. Without the key only
    `status` (liveness); with it the engine and versions as well."""

    status: str
    engine: str | None = None
    schema_version: int | None = None
    version: str | None = None


# -- tracking (crossings, zone events, interval summaries) -----------------------------------


class CountRow(Struct):
    """Crossings of one line by one class in one bucket, per direction."""

    ts_utc: datetime  # start of the bucket
    line: str
    class_name: str
    in_: int = msgspec.field(name="in")
    out: int = 0


class CountTotal(Struct):
    """Crossings of one line by one class over the whole range."""

    line: str
    class_name: str
    in_: int = msgspec.field(name="in")
    out: int = 0


class CountSeries(Struct):
    """Line crossings per bucket from since_utc (inclusive) to until_utc (exclusive).

    `rows` holds only the (bucket, line, class) that had a crossing, ordered by time, line
    and class; `totals` sums them over the range."""

    bucket: TrackBucket
    since_utc: datetime
    until_utc: datetime
    lines: list[str]
    classes: list[str]
    rows: list[CountRow]
    totals: list[CountTotal]


class ZoneOccupancy(Struct):
    """One zone of one source now: objects inside (enters minus exits per class, never
    below 0), and the device's own count from its latest zone event to compare."""

    source_id: str
    zone: str
    occupancy: int
    by_class: dict[str, int]  # classes with at least one object inside
    enters: int
    exits: int
    lost_exits: int  # exits of tracks the device lost (not seen leaving); part of exits
    reported_occupancy: int  # `occupancy` of the latest zone event of this source and zone
    last_event_utc: datetime | None


class ZoneTrack(Struct):
    """One zone and class over the buckets of a ZoneSeries (one value per bucket)."""

    zone: str
    class_name: str
    enters: list[int]
    exits: list[int]
    lost_exits: list[int]
    occupancy: list[int]  # objects inside at the END of each bucket
    mean_dwell_sec: list[float | None]  # mean dwell of the exits in the bucket


class ZoneSeries(Struct):
    """Zone activity and occupancy per bucket (summed over sources unless one is asked)."""

    bucket: TrackBucket
    since_utc: datetime
    until_utc: datetime
    buckets: list[datetime]
    zones: list[ZoneTrack]


class DwellStats(Struct):
    """Seconds inside a zone, over the exits of a time range (nearest-rank percentiles)."""

    zone: str
    class_name: str
    exits: int
    lost_exits: int
    mean_sec: float
    p50_sec: float
    p95_sec: float
    max_sec: float


class SummaryBucket(Struct):
    """Interval summaries whose interval starts in this bucket, summed."""

    ts_utc: datetime
    intervals: int
    frames: int
    detections_by_class: dict[str, int]
    tracks_by_class: dict[str, int]  # distinct tracks per interval, summed over intervals
    new_tracks_by_class: dict[str, int]  # tracks first seen: the objects of the bucket


class SummarySeries(Struct):
    """Interval summaries per bucket, empty buckets included."""

    bucket: TrackBucket
    since_utc: datetime
    until_utc: datetime
    classes: list[str]
    buckets: list[SummaryBucket]


class ZonesReport(Struct):
    """`vision-stats zones --json`: occupancy now, and dwell over a time range."""

    occupancy: list[ZoneOccupancy]
    dwell_since_utc: datetime
    dwell_until_utc: datetime
    dwell: list[DwellStats]
