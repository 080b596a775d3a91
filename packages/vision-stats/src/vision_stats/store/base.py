"""The helpers every engine shares: time in microseconds, saturated reads, event rows.

The store interface, `StatsStore`, is in `vision_stats.store.sql`.

Times are stored as integer microseconds since the Unix epoch (UTC), in both engines:
bucketing is integer arithmetic, and the SQL that reads them is the same for SQLite and
PostgreSQL.

Reads never break on stored data: every integer read back is saturated into int64
(`sat`), every stored time is clamped into what a datetime can hold (`from_us`), and a
counts_json that does not parse reads as no classes. Rows that needed this are what
`vision-stats doctor` repairs.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Sequence, Set
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

import msgspec

from vision_core.types import StatsEvent
from vision_stats.errors import InvalidQueryError
from vision_stats.models import InsertResult

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
US = timedelta(microseconds=1)
INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)
MINUTE_US = 60_000_000
HOUR_US = 3_600_000_000
BUCKET_US: dict[str, int] = {"minute": MINUTE_US, "hour": HOUR_US}
MAX_BUCKETS = 1_500
MAX_LIMIT = 10_000

_counts_encoder = msgspec.json.Encoder()
_counts_decoder = msgspec.json.Decoder(dict[str, int])


def to_us(dt: datetime) -> int:
    """Microseconds since the epoch of an aware datetime."""
    return (dt - EPOCH) // US


MIN_US = (datetime(1, 1, 2, tzinfo=UTC) - EPOCH) // US
MAX_US = (datetime(9999, 12, 30, tzinfo=UTC) - EPOCH) // US


def sat(value: object) -> int:
    """An integer read from the database, saturated into int64 (None and junk are 0)."""
    try:
        n = int(value)  # type: ignore[call-overload]
    except OverflowError:  # an infinite float
        return INT64_MAX if float(value) > 0 else INT64_MIN  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0
    return max(INT64_MIN, min(INT64_MAX, n))


def clamp(value: object, cap: int) -> int:
    """An integer read from the database, saturated into [0, cap]."""
    return max(0, min(cap, sat(value)))


def clamp_float(value: object, cap: float) -> float:
    """A float read from the database, in [0, cap]: junk, NaN, infinities and negatives
    read as 0."""
    try:
        f = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0.0
    return min(f, cap) if math.isfinite(f) and f >= 0 else 0.0


def from_us(us: object) -> datetime:
    """The datetime of stored microseconds, clamped into what a datetime can hold."""
    return EPOCH + timedelta(microseconds=max(MIN_US, min(MAX_US, sat(us))))


def floor_to(us: int, width: int) -> int:
    """Start of the bucket holding `us` (floor, also before 1970)."""
    return us - us % width


def ceil_to(us: int, width: int) -> int:
    return -floor_to(-us, width)


def widen(
    bucket: str,
    width: int,
    default_count: int,
    since: datetime | None,
    until: datetime | None,
    now: datetime,
    *,
    wider: str,
) -> tuple[int, int]:
    """(start µs, number of buckets) of [since, until) widened to whole buckets of `width`
    (without since: the `default_count` buckets up to until or now). More than MAX_BUCKETS
    is an InvalidQueryError whose advice ends with `wider`; none at all is the caller's."""
    end = ceil_to(to_us(until or now), width)
    start = floor_to(to_us(since), width) if since is not None else end - default_count * width
    count = (end - start) // width
    if count > MAX_BUCKETS:
        raise InvalidQueryError(
            f"the range holds {count} {bucket} buckets, more than {MAX_BUCKETS}: narrow"
            f" since/until or {wider}",
            field="since",
        )
    return start, count


class EventRow(NamedTuple):
    """One `events` row, in column order."""

    event_id: str
    ts_us: int
    source_id: str
    mode: str
    frame_index: int
    latency_ms: float
    detections_total: int
    model: str
    counts_json: str


EVENT_COLUMNS = EventRow._fields


def event_row(ev: StatsEvent) -> EventRow:
    return EventRow(
        ev.event_id,
        to_us(ev.ts_utc),
        ev.source_id,
        ev.mode,
        ev.frame_index,
        float(ev.latency_ms),
        ev.detections_total,
        ev.model,
        _counts_encoder.encode(ev.counts_by_class).decode(),
    )


def _float(value: object) -> float:
    try:
        f = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return 0.0
    return f if math.isfinite(f) else 0.0


def _counts(text: object) -> dict[str, int]:
    try:
        counts = _counts_decoder.decode(str(text))
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeEncodeError):
        return {}
    return {str(k): sat(v) for k, v in counts.items()}


def row_event(row: tuple[object, ...]) -> StatsEvent:
    """Back from a row selected in EVENT_COLUMNS order (defensively: see the docstring)."""
    r = EventRow(*row)  # type: ignore[arg-type]
    return StatsEvent(
        event_id=str(r.event_id),
        ts_utc=from_us(r.ts_us),
        source_id=str(r.source_id),
        mode=str(r.mode),
        frame_index=sat(r.frame_index),
        latency_ms=_float(r.latency_ms),
        detections_total=sat(r.detections_total),
        counts_by_class=_counts(r.counts_json),
        model=str(r.model),
    )


def class_counts(row: EventRow) -> dict[str, int]:
    return _counts(row.counts_json)


def as_batch(events: StatsEvent | Iterable[StatsEvent]) -> list[StatsEvent]:
    return [events] if isinstance(events, StatsEvent) else list(events)


def insert_result(batch: Sequence[tuple[Hashable, str]], new: Set[Hashable]) -> InsertResult:
    """The answer to an insert of `batch`, (key, event_id) in the order sent, whose keys in
    `new` were stored just now: the first event of a new key is stored; a known key, and a
    repeat inside the batch, is a duplicate."""
    fresh = set(new)
    stored: list[str] = []
    duplicates: list[str] = []
    for key, event_id in batch:
        if key in fresh:
            stored.append(event_id)
            fresh.discard(key)
        else:
            duplicates.append(event_id)
    return InsertResult(len(batch), len(stored), len(duplicates), stored, duplicates)
