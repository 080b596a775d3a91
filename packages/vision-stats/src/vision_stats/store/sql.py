"""The store: one interface (`StatsStore`), two engines (SQLite, PostgreSQL) that
supply connections, transactions and the bulk-insert path; the logic is here, in one SQL
dialect (`?` placeholders).

An insert is one transaction: the engine stores the events whose event_id is new and
says which ones; only those are added to the rollups, so a batch sent twice counts once
and a batch that fails leaves nothing behind.

Reads: totals without a time range come from source_totals / source_class_totals
(O(sources)). With a time range, the whole minutes inside it come from the minute
rollups and the partial minutes at its edges from raw events: the answer is exact and
costs what the range's minutes cost, not what its events cost.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from vision_core.types import StatsEvent, TrackEvent
from vision_stats.errors import InvalidQueryError
from vision_stats.models import (
    Bucket,
    ClassTotal,
    CountSeries,
    DoctorReport,
    DwellStats,
    InsertResult,
    Overview,
    PruneResult,
    Series,
    SourceInfo,
    SummarySeries,
    TrackBucket,
    ZoneOccupancy,
    ZoneSeries,
)
from vision_stats.store.base import (
    BUCKET_US,
    EVENT_COLUMNS,
    HOUR_US,
    MAX_LIMIT,
    MINUTE_US,
    EventRow,
    as_batch,
    ceil_to,
    event_row,
    floor_to,
    from_us,
    insert_result,
    row_event,
    sat,
    to_us,
    widen,
)
from vision_stats.store.doctor import run_doctor
from vision_stats.store.migrations import current_version, migrate
from vision_stats.store.rollups import (
    SQLITE_SAT_ADD,
    Dialect,
    NewRows,
    add_new_rows,
    prune_before,
)
from vision_stats.store.series import Percentiles, percentiles_in_python, read_series
from vision_stats.store.track_doctor import run_track_doctor
from vision_stats.store.track_read import (
    read_counts,
    read_dwell,
    read_occupancy,
    read_summaries,
    read_zone_series,
    window,
)
from vision_stats.store.track_write import Table, insert_track_events, prune_track_before

T = TypeVar("T")
Cursor = Any  # sqlite3.Cursor or psycopg.Cursor: the DB-API subset both share
Span = tuple[int | None, int | None]  # [lo, hi) in microseconds, None = open
_DEFAULT_WINDOW = {"minute": 60, "hour": 24}


def _num(value: Any) -> float:
    """A float for JSON: None, NaN and infinities (a poisoned PostgreSQL row) read as 0."""
    f = float(value) if value is not None else 0.0
    return f if math.isfinite(f) else 0.0


def _where(col: str, span: Span, source: str | None) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    if source is not None:
        clauses.append("source_id = ?")
        params.append(source)
    if span[0] is not None:
        clauses.append(f"{col} >= ?")
        params.append(span[0])
    if span[1] is not None:
        clauses.append(f"{col} < ?")
        params.append(span[1])
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


def _span(since: datetime | None, until: datetime | None) -> Span:
    if since is not None and until is not None and since >= until:
        raise InvalidQueryError(
            f"since ({since.isoformat()}) must be before until ({until.isoformat()})",
            field="since",
        )
    return (
        to_us(since) if since is not None else None,
        to_us(until) if until is not None else None,
    )


def _split(span: Span) -> tuple[Span | None, list[Span]]:
    """Whole minutes of `span` (for the rollups) and its partial-minute edges (raw)."""
    s, u = span
    lo = ceil_to(s, MINUTE_US) if s is not None else None
    hi = floor_to(u, MINUTE_US) if u is not None else None
    if lo is not None and hi is not None and lo >= hi:
        return None, [span]
    edges: list[Span] = []
    if s is not None and lo is not None and s < lo:
        edges.append((s, lo))
    if u is not None and hi is not None and hi < u:
        edges.append((hi, u))
    return (lo, hi), edges


def _check_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidQueryError(f"limit: expected 1..{MAX_LIMIT}, got {limit}", field="limit")
    return limit


class StatsStore(ABC):
    """One interface, two engines (SQLite, PostgreSQL). Thread-safe; open with `open_store`.

    An engine subclass supplies connections, transactions and the bulk-insert path.
    Filters: `source` (one source_id), `since` (inclusive) and `until` (exclusive), both
    aware datetimes. Without a time range, totals come from rollups kept up to date by
    every insert, so they cost the same at 1M events as at 10.
    """

    engine: str = ""
    #: the DSN or path with any password blanked, for logs and messages
    display_name: str = ""

    #: the two-argument maximum: MAX in SQLite, GREATEST in PostgreSQL
    greatest = "MAX"
    #: a FROM item giving j.key / j.value for each class of an `events` row
    json_classes = "json_each(events.counts_json) AS j"
    #: j.value as an integer
    json_value = "j.value"
    #: json_classes for reads of stored rows that may predate the bounds (doctor's kind):
    #: a counts_json that is not a JSON object reads as no classes instead of an error
    json_classes_safe = (
        "json_each(CASE WHEN json_valid(events.counts_json) THEN CASE WHEN"
        " json_type(events.counts_json) = 'object' THEN events.counts_json ELSE '{}' END"
        " ELSE '{}' END) AS j"
    )
    #: how p50/p95 per bucket are computed
    percentiles: Percentiles = staticmethod(percentiles_in_python)
    #: the sum of integer columns in reads, in a type wider than int64: SQLite's TOTAL
    #: (a float, exact to 2**53) never raises "integer overflow"; PostgreSQL's SUM of
    #: BIGINT is NUMERIC. Read back saturated into int64 (`sat`).
    wide_sum = "TOTAL"
    #: a + b saturated at the int64 maximum, for the rollup upserts
    sat_add = SQLITE_SAT_ADD
    #: dwell percentiles by the database (percentile_disc) rather than sorted in Python
    dwell_in_sql = False

    def _q(self, sql: str) -> str:
        """The engine's spelling of a `?`-placeholder statement."""
        return sql

    @abstractmethod
    def _transact(self, fn: Callable[[Cursor], T]) -> T:
        """Run fn(cursor) in one write transaction: commit, or roll back and raise."""

    @abstractmethod
    def _read(self, fn: Callable[[Cursor], T]) -> T:
        """Run fn(cursor) on a pooled connection, read only."""

    @abstractmethod
    def _insert_events(self, cur: Cursor, rows: list[EventRow]) -> tuple[set[str], NewRows]:
        """Insert the rows whose event_id is new; return those event_ids and where they are."""

    @abstractmethod
    def _insert_new(self, cur: Cursor, table: Table, rows: list[tuple[Any, ...]]) -> set[str]:
        """Insert the rows (event_id first, sorted) whose event_id is new; return those ids."""

    @abstractmethod
    def _insert_all(self, cur: Cursor, table: Table, rows: list[tuple[Any, ...]]) -> None:
        """Insert every row (a conflict with a stored row is skipped)."""

    def _lock_schema(self, cur: Cursor) -> None:  # noqa: B027 - a hook, empty for SQLite
        """Keep two processes from migrating at once (SQLite: BEGIN IMMEDIATE does)."""

    def _fetch(self, sql: str, params: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
        def run(cur: Cursor) -> list[tuple[Any, ...]]:
            cur.execute(self._q(sql), tuple(params))
            return list(cur.fetchall())

        return self._read(run)

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> StatsStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def init(self, target_version: int | None = None) -> int:
        """Apply pending schema migrations (up to `target_version`); return the version."""

        def run(cur: Cursor) -> int:
            self._lock_schema(cur)
            return migrate(
                cur,
                q=self._q,
                json_classes=self.json_classes,
                json_value=self.json_value,
                target=target_version,
            )

        return self._transact(run)

    def schema_version(self) -> int:
        return self._read(current_version)

    def ping(self) -> None:
        """Raise StoreUnavailableError unless the database answers."""
        self._fetch("SELECT 1")

    # -- writing ---------------------------------------------------------------------

    def insert(self, events: StatsEvent | Iterable[StatsEvent]) -> InsertResult:
        """Store one event or a batch in one transaction; known event_ids are skipped."""
        batch = as_batch(events)
        unique: dict[str, EventRow] = {}
        for ev in batch:
            if ev.event_id not in unique:
                unique[ev.event_id] = event_row(ev)
        rows = [unique[k] for k in sorted(unique)]  # key order: index locality, lock order
        new_ids = self._transact(lambda cur: self._store(cur, rows)) if rows else set()
        return insert_result([(ev.event_id, ev.event_id) for ev in batch], new_ids)

    def _store(self, cur: Cursor, rows: list[EventRow]) -> set[str]:
        new_ids, new_rows = self._insert_events(cur, rows)
        if new_ids:
            add_new_rows(cur, new_rows, self._dialect())
        return new_ids

    def _dialect(self) -> Dialect:
        return Dialect(self._q, self.greatest, self.json_classes, self.json_value, self.sat_add)

    def insert_track_events(self, events: Iterable[TrackEvent]) -> InsertResult:
        """Store a batch of crossings, zone events and summaries (kinds may be mixed) in
        one transaction; an event whose (kind, event_id) is known is skipped."""
        batch = list(events)
        if not batch:
            return InsertResult(0, 0, 0, [], [])
        return self._transact(
            lambda cur: insert_track_events(
                cur, batch, self._dialect(), self._insert_new, self._insert_all
            )
        )

    def doctor(self, *, repair: bool = True) -> DoctorReport:
        """Find (and repair) rows no reader should meet; rebuild the rollups from events."""

        def run(cur: Cursor) -> DoctorReport:
            report = run_doctor(cur, self._dialect(), repair=repair)
            rows, deleted, clamped = run_track_doctor(cur, self._q, repair=repair)
            return DoctorReport(
                self.engine,
                *report,
                repaired=repair,
                rollups_rebuilt=repair,
                track_rows=rows,
                track_deleted=deleted,
                track_clamped=clamped,
            )

        return self._transact(run)

    def prune(self, older_than: timedelta, *, now: datetime | None = None) -> PruneResult:
        """Delete events older than `older_than` (at minute granularity, never newer)."""
        if older_than <= timedelta(0):
            raise InvalidQueryError(
                f"older_than: expected a positive duration, got {older_than}", field="older_than"
            )
        cutoff = floor_to(to_us((now or datetime.now(UTC)) - older_than), MINUTE_US)
        track_cutoff = floor_to(cutoff, HOUR_US)  # the tracking rollups are hourly

        def run(cur: Cursor) -> tuple[int, int]:
            deleted = prune_before(cur, cutoff, q=self._q, wide_sum=self.wide_sum)
            track = prune_track_before(cur, track_cutoff, q=self._q, wide_sum=self.wide_sum)
            return deleted, track

        deleted, track = self._transact(run)
        return PruneResult(from_us(cutoff), deleted, from_us(track_cutoff), track)

    # -- reading ---------------------------------------------------------------------

    def recent(
        self,
        limit: int = 50,
        *,
        source: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[StatsEvent]:
        """Newest first."""
        where, params = _where("ts_us", _span(since, until), source)
        rows = self._fetch(
            f"SELECT {', '.join(EVENT_COLUMNS)} FROM events{where}"
            " ORDER BY ts_us DESC, event_id DESC LIMIT ?",
            [*params, _check_limit(limit)],
        )
        return [row_event(r) for r in rows]

    def overview(
        self,
        *,
        source: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> Overview:
        span = _span(since, until)
        if span == (None, None):
            where, params = _where("", span, source)
            w = self.wide_sum
            ((events, detections, lat_sum, sources, last),) = self._fetch(
                f"SELECT COALESCE({w}(events), 0), COALESCE({w}(detections), 0),"
                f" SUM(latency_sum), COUNT(*), MAX(last_ts_us) FROM source_totals{where}",
                params,
            )
        else:
            events, detections, lat_sum, sources, last = self._read(
                lambda cur: self._overview_span(cur, span, source)
            )
        events = sat(events)
        return Overview(
            events_total=events,
            detections_total=sat(detections),
            avg_latency_ms=_num(lat_sum) / events if events > 0 else None,
            source_count=sat(sources),
            last_event_ts_utc=from_us(last) if last is not None else None,
        )

    def _overview_span(
        self, cur: Cursor, span: Span, source: str | None
    ) -> tuple[int, int, float, int, int | None]:
        q, w = self._q, self.wide_sum
        inner, edges = _split(span)
        events, detections, lat_sum = 0, 0, 0.0
        if inner is not None:
            where, params = _where("bucket_us", inner, source)
            cur.execute(
                q(
                    f"SELECT {w}(events), {w}(detections), SUM(latency_sum)"
                    f" FROM minute_rollup{where}"
                ),
                params,
            )
            e, d, lat = cur.fetchone()
            events, detections, lat_sum = sat(e), sat(d), _num(lat)
        for edge in edges:
            where, params = _where("ts_us", edge, source)
            cur.execute(
                q(f"SELECT COUNT(*), {w}(detections_total), SUM(latency_ms) FROM events{where}"),
                params,
            )
            e, d, lat = cur.fetchone()
            events, detections, lat_sum = (
                sat(events + sat(e)),
                sat(detections + sat(d)),
                lat_sum + _num(lat),
            )
        # sources with an event in the span: one (source_id, ts_us) index probe per source
        conds, params = ["e.source_id = s.source_id"], []
        for op, bound in ((">=", span[0]), ("<", span[1])):
            if bound is not None:
                conds.append(f"e.ts_us {op} ?")
                params.append(bound)
        only = "s.source_id = ? AND " if source is not None else ""
        cur.execute(
            q(
                f"SELECT COUNT(*) FROM source_totals AS s WHERE {only}"
                f"EXISTS (SELECT 1 FROM events AS e WHERE {' AND '.join(conds)})"
            ),
            ([source] if source is not None else []) + params,
        )
        sources = sat(cur.fetchone()[0])
        where, params = _where("ts_us", span, source)
        cur.execute(q(f"SELECT ts_us FROM events{where} ORDER BY ts_us DESC LIMIT 1"), params)
        last = cur.fetchone()
        return events, detections, lat_sum, sources, (int(last[0]) if last else None)

    def class_totals(
        self,
        limit: int = 20,
        *,
        source: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[ClassTotal]:
        """Most detected classes first (ties by name)."""
        span = _span(since, until)
        _check_limit(limit)
        if span == (None, None):
            where, params = _where("", span, source)
            rows = self._fetch(
                f"SELECT class_name, {self.wide_sum}(detections) AS n FROM source_class_totals"
                f"{where} GROUP BY class_name ORDER BY n DESC, class_name LIMIT ?",
                [*params, limit],
            )
            return [ClassTotal(name, sat(n)) for name, n in rows]
        totals = self._read(lambda cur: self._classes_span(cur, span, source))
        ranked = sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
        return [ClassTotal(name, n) for name, n in ranked]

    def _classes_span(self, cur: Cursor, span: Span, source: str | None) -> dict[str, int]:
        inner, edges = _split(span)
        totals: dict[str, int] = defaultdict(int)
        if inner is not None:
            where, params = _where("bucket_us", inner, source)
            cur.execute(
                self._q(
                    f"SELECT class_name, {self.wide_sum}(detections) FROM minute_class_rollup"
                    f"{where} GROUP BY class_name"
                ),
                params,
            )
            for name, n in cur.fetchall():
                totals[name] = sat(totals[name] + sat(n))
        for edge in edges:
            where, params = _where("ts_us", edge, source)
            cur.execute(
                self._q(
                    f"SELECT j.key, {self.wide_sum}({self.json_value}) FROM events,"
                    f" {self.json_classes_safe}{where} GROUP BY j.key"
                ),
                params,
            )
            for name, n in cur.fetchall():
                if sat(n) > 0:
                    totals[name] = sat(totals[name] + sat(n))
        return totals

    def sources(self, *, now: datetime | None = None) -> list[SourceInfo]:
        """Every source with its last event time, the longest silent first."""
        now_us = to_us(now or datetime.now(UTC))
        rows = self._fetch(
            "SELECT source_id, events, detections, latency_sum, last_ts_us FROM source_totals"
            " ORDER BY last_ts_us, source_id"
        )
        return [
            SourceInfo(
                source_id=s,
                events=sat(e),
                detections=sat(d),
                avg_latency_ms=_num(lat) / sat(e) if sat(e) > 0 else None,
                last_seen_utc=from_us(last),
                seconds_since_last=(now_us - to_us(from_us(last))) / 1e6,
            )
            for s, e, d, lat, last in rows
        ]

    def series(
        self,
        *,
        bucket: Bucket = "minute",
        since: datetime | None = None,
        until: datetime | None = None,
        source: str | None = None,
        now: datetime | None = None,
    ) -> Series:
        """Per-minute or per-hour buckets; default window: 60 minutes or 24 hours to now."""
        if bucket not in BUCKET_US:
            raise InvalidQueryError(
                f"bucket: expected 'minute' or 'hour', got {bucket!r}", field="bucket"
            )
        now = now or datetime.now(UTC)
        width, default = BUCKET_US[bucket], _DEFAULT_WINDOW[bucket]
        start, count = widen(bucket, width, default, since, until, now, wider="use bucket=hour")
        if count <= 0:
            raise InvalidQueryError("since must be before until", field="since")
        return self._read(
            lambda cur: read_series(
                cur, self._q, bucket, start, count, source, self.percentiles, self.wide_sum
            )
        )

    # -- tracking reads ----------------------------------------------------------------

    def track_counts(
        self,
        *,
        bucket: TrackBucket = "hour",
        since: datetime | None = None,
        until: datetime | None = None,
        source: str | None = None,
        line: str | None = None,
        now: datetime | None = None,
    ) -> CountSeries:
        """Crossings per bucket, line, class and direction (default: the last 24 hours)."""
        return self._track_read(read_counts, bucket, since, until, now, source, line)

    def zone_occupancy(
        self, *, source: str | None = None, zone: str | None = None
    ) -> list[ZoneOccupancy]:
        """Objects inside each zone of each source now (enters - exits per class)."""
        return self._read(lambda cur: read_occupancy(cur, self._q, source, zone))

    def zone_series(
        self,
        *,
        bucket: TrackBucket = "hour",
        since: datetime | None = None,
        until: datetime | None = None,
        source: str | None = None,
        zone: str | None = None,
        now: datetime | None = None,
    ) -> ZoneSeries:
        """Enters, exits, dwell and occupancy at the end of each bucket, per zone and class."""
        return self._track_read(read_zone_series, bucket, since, until, now, source, zone)

    def dwell_stats(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        source: str | None = None,
        zone: str | None = None,
        now: datetime | None = None,
    ) -> list[DwellStats]:
        """Dwell per zone and class over the exits in [since, until) (default: last 24 h)."""
        end = until or now or datetime.now(UTC)
        start = since if since is not None else end - timedelta(hours=24)
        lo, hi = _span(start, end)
        assert lo is not None and hi is not None
        return self._read(
            lambda cur: read_dwell(cur, self._q, lo, hi, source, zone, in_sql=self.dwell_in_sql)
        )

    def summary_series(
        self,
        *,
        bucket: TrackBucket = "hour",
        since: datetime | None = None,
        until: datetime | None = None,
        source: str | None = None,
        now: datetime | None = None,
    ) -> SummarySeries:
        """Interval summaries per bucket: frames, detections, tracks, new tracks per class."""
        return self._track_read(read_summaries, bucket, since, until, now, source)

    def _track_read(
        self,
        read: Callable[..., T],
        bucket: TrackBucket,
        since: datetime | None,
        until: datetime | None,
        now: datetime | None,
        *names: str | None,
    ) -> T:
        """read(cur, q, wide_sum, window, *names) over the range widened to whole buckets."""
        win = window(bucket, since, until, now or datetime.now(UTC))
        return self._read(lambda cur: read(cur, self._q, self.wide_sum, win, *names))
