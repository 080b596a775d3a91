"""The write side of the tracking tables: rows of the events, the hourly rollups, prune.

A batch of `TrackEvent`s (crossings, zone events, interval summaries, mixed) is stored in
one transaction. Each kind has its own table with event_id as primary key: an event sent
again is skipped (idempotent by kind and event_id; the devices' ids are UUIDv7, so two
kinds never share one in practice). The engine says which rows were new
(`StatsStore._insert_new`); only those are summed into the rollups here, in Python (a batch
holds at most 10 000 events: one pass over them is microseconds per event), and upserted
in primary-key order, so concurrent writers lock rollup rows in the same order.

Rollups, all changed in the insert's transaction:

- crossing_hour: crossings per hour, source, line, class and direction;
- zone_hour: enters, exits, lost exits, dwell sum and max per hour, source, zone, class;
- zone_state: enters, exits and lost exits per source, zone and class over every stored
  zone event (occupancy now = enters - exits; `prune` takes pruned events off it too);
- summary_hour / summary_class_hour: intervals and frames, and detections, tracks and new
  tracks per class, per hour of the interval's start and source.

Every counter upsert saturates at 2**63-1 instead of overflowing (`Dialect.sat_add`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from vision_core.types import CrossingEvent, IntervalSummary, TrackEvent, ZoneEvent
from vision_stats.decode import kind_of
from vision_stats.models import InsertResult
from vision_stats.store.base import HOUR_US, floor_to, insert_result, sat, to_us
from vision_stats.store.rollups import Dialect

Cursor = Any


@dataclass(frozen=True, slots=True)
class Table:
    """A raw tracking table: its columns with their PostgreSQL types (for bulk inserts)."""

    name: str
    columns: tuple[tuple[str, str], ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c for c, _ in self.columns)


CROSSINGS = Table(
    "crossings",
    (
        ("event_id", "text"), ("ts_us", "bigint"), ("source_id", "text"), ("line", "text"),
        ("direction", "text"), ("class_name", "text"), ("track_id", "bigint"),
        ("model", "text"), ("frame_index", "bigint"),
    ),
)  # fmt: skip
ZONE_EVENTS = Table(
    "zone_events",
    (
        ("event_id", "text"), ("ts_us", "bigint"), ("source_id", "text"), ("zone", "text"),
        ("action", "text"), ("class_name", "text"), ("track_id", "bigint"), ("model", "text"),
        ("frame_index", "bigint"), ("dwell_sec", "float8"), ("occupancy", "bigint"),
        ("lost", "smallint"),
    ),
)  # fmt: skip
SUMMARIES = Table(
    "summaries",
    (
        ("event_id", "text"), ("start_us", "bigint"), ("end_us", "bigint"),
        ("source_id", "text"), ("frames", "bigint"), ("model", "text"),
    ),
)  # fmt: skip
SUMMARY_CLASSES = Table(
    "summary_classes",
    (
        ("event_id", "text"), ("class_name", "text"), ("start_us", "bigint"),
        ("source_id", "text"), ("detections", "bigint"), ("tracks", "bigint"),
        ("new_tracks", "bigint"),
    ),
)  # fmt: skip

#: what the engine provides: insert `rows` into `table`, skipping known event_ids; the new ids
InsertNew = Callable[[Cursor, Table, list[tuple[Any, ...]]], set[str]]
#: insert `rows` into `table` (no conflict expected)
InsertAll = Callable[[Cursor, Table, list[tuple[Any, ...]]], None]


def crossing_row(ev: CrossingEvent) -> tuple[Any, ...]:
    return (
        ev.event_id, to_us(ev.ts_utc), ev.source_id, ev.line, ev.direction, ev.class_name,
        ev.track_id, ev.model, ev.frame_index,
    )  # fmt: skip


def zone_row(ev: ZoneEvent) -> tuple[Any, ...]:
    return (
        ev.event_id, to_us(ev.ts_utc), ev.source_id, ev.zone, ev.action, ev.class_name,
        ev.track_id, ev.model, ev.frame_index, float(ev.dwell_sec), ev.occupancy, int(ev.lost),
    )  # fmt: skip


def summary_row(ev: IntervalSummary) -> tuple[Any, ...]:
    return (
        ev.event_id, to_us(ev.start_utc), to_us(ev.end_utc), ev.source_id, ev.frames, ev.model,
    )  # fmt: skip


def summary_class_rows(ev: IntervalSummary) -> list[tuple[Any, ...]]:
    start = to_us(ev.start_utc)
    names = sorted({*ev.detections_by_class, *ev.tracks_by_class, *ev.new_tracks_by_class})
    d, t, n = ev.detections_by_class, ev.tracks_by_class, ev.new_tracks_by_class
    return [
        (ev.event_id, c, start, ev.source_id, d.get(c, 0), t.get(c, 0), n.get(c, 0)) for c in names
    ]


def insert_track_events(
    cur: Cursor,
    events: list[TrackEvent],
    d: Dialect,
    insert_new: InsertNew,
    insert_all: InsertAll,
) -> InsertResult:
    """Store the new events of `events` and add them to the rollups; say which were new.

    A repeat of (kind, event_id) inside the batch is a duplicate like one already stored.
    """
    crossings: dict[str, CrossingEvent] = {}
    zones: dict[str, ZoneEvent] = {}
    summaries: dict[str, IntervalSummary] = {}
    for ev in events:
        if isinstance(ev, CrossingEvent):
            crossings.setdefault(ev.event_id, ev)
        elif isinstance(ev, ZoneEvent):
            zones.setdefault(ev.event_id, ev)
        else:
            summaries.setdefault(ev.event_id, ev)
    new_c = _new(cur, insert_new, CROSSINGS, crossings, crossing_row)
    new_z = _new(cur, insert_new, ZONE_EVENTS, zones, zone_row)
    new_s = _new(cur, insert_new, SUMMARIES, summaries, summary_row)
    class_rows = [r for k in sorted(new_s) for r in summary_class_rows(summaries[k])]
    if class_rows:
        insert_all(cur, SUMMARY_CLASSES, class_rows)
    _add_crossings(cur, d, [crossings[k] for k in new_c])
    _add_zone_events(cur, d, [zones[k] for k in new_z])
    _add_summaries(cur, d, [summaries[k] for k in new_s])
    new = {
        *(("crossing", k) for k in new_c),
        *(("zone", k) for k in new_z),
        *(("summary", k) for k in new_s),
    }
    return insert_result([((kind_of(ev), ev.event_id), ev.event_id) for ev in events], new)


def _new(
    cur: Cursor,
    insert_new: InsertNew,
    table: Table,
    by_id: dict[str, Any],
    to_row: Callable[[Any], tuple[Any, ...]],
) -> list[str]:
    if not by_id:
        return []
    keys = sorted(by_id)  # key order: index locality, lock order
    new_ids = insert_new(cur, table, [to_row(by_id[k]) for k in keys])
    return [k for k in keys if k in new_ids]


def _upsert(
    cur: Cursor,
    d: Dialect,
    table: str,
    keys: tuple[str, ...],
    sums: dict[str, str],
    rows: Iterable[tuple[Any, ...]],
) -> None:
    """INSERT ... ON CONFLICT (keys) DO UPDATE: each value column combined as `sums` says
    ("add": saturating integer add, "fadd": float add, "max": the larger)."""
    cols = (*keys, *sums)

    def combine(col: str, how: str) -> str:
        a, b = f"{table}.{col}", f"excluded.{col}"
        if how == "add":
            return d.sat_add.format(a=a, b=b)
        if how == "max":
            return f"{d.greatest}({a}, {b})"
        return f"{a} + {b}"

    sets = ", ".join(f"{col} = {combine(col, how)}" for col, how in sums.items())
    cur.executemany(
        d.q(
            f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
            f" ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {sets}"
        ),
        sorted(rows),
    )


def _add_crossings(cur: Cursor, d: Dialect, events: list[CrossingEvent]) -> None:
    if not events:
        return
    counts: dict[tuple[Any, ...], int] = defaultdict(int)
    for ev in events:
        hour = floor_to(to_us(ev.ts_utc), HOUR_US)
        counts[(hour, ev.source_id, ev.line, ev.class_name, ev.direction)] += 1
    _upsert(
        cur,
        d,
        "crossing_hour",
        ("bucket_us", "source_id", "line", "class_name", "direction"),
        {"crossings": "add"},
        ((*k, n) for k, n in counts.items()),
    )


def _add_zone_events(cur: Cursor, d: Dialect, events: list[ZoneEvent]) -> None:
    if not events:
        return
    # (enters, exits, lost exits, dwell sum, dwell max)
    hours: dict[tuple[Any, ...], list[Any]] = defaultdict(lambda: [0, 0, 0, 0.0, 0.0])
    for ev in events:
        hour = floor_to(to_us(ev.ts_utc), HOUR_US)
        acc = hours[(hour, ev.source_id, ev.zone, ev.class_name)]
        if ev.action == "enter":
            acc[0] += 1
        else:
            acc[1] += 1
            acc[2] += int(ev.lost)
            acc[3] += float(ev.dwell_sec)
            acc[4] = max(acc[4], float(ev.dwell_sec))
    _upsert(
        cur,
        d,
        "zone_hour",
        ("bucket_us", "source_id", "zone", "class_name"),
        {"enters": "add", "exits": "add", "lost_exits": "add", "dwell_sum": "fadd",
         "dwell_max": "max"},
        ((*k, *v) for k, v in hours.items()),
    )  # fmt: skip
    state: dict[tuple[Any, ...], list[int]] = defaultdict(lambda: [0, 0, 0])
    for (_hour, *key), acc in hours.items():
        totals = state[tuple(key)]
        for i in range(3):
            totals[i] += acc[i]
    _upsert(
        cur,
        d,
        "zone_state",
        ("source_id", "zone", "class_name"),
        {"enters": "add", "exits": "add", "lost_exits": "add"},
        ((*k, *v) for k, v in state.items()),
    )


def _add_summaries(cur: Cursor, d: Dialect, events: list[IntervalSummary]) -> None:
    if not events:
        return
    hours: dict[tuple[Any, ...], list[int]] = defaultdict(lambda: [0, 0])
    classes: dict[tuple[Any, ...], list[int]] = defaultdict(lambda: [0, 0, 0])
    for ev in events:
        hour = floor_to(to_us(ev.start_utc), HOUR_US)
        acc = hours[(hour, ev.source_id)]
        acc[0] += 1
        acc[1] += ev.frames
        for name, n in ev.detections_by_class.items():
            classes[(hour, ev.source_id, name)][0] += n
        for name, n in ev.tracks_by_class.items():
            classes[(hour, ev.source_id, name)][1] += n
        for name, n in ev.new_tracks_by_class.items():
            classes[(hour, ev.source_id, name)][2] += n
    _upsert(
        cur,
        d,
        "summary_hour",
        ("bucket_us", "source_id"),
        {"intervals": "add", "frames": "add"},
        ((*k, *(sat(x) for x in v)) for k, v in hours.items()),
    )
    if classes:
        _upsert(
            cur,
            d,
            "summary_class_hour",
            ("bucket_us", "source_id", "class_name"),
            {"detections": "add", "tracks": "add", "new_tracks": "add"},
            ((*k, *(sat(x) for x in v)) for k, v in classes.items()),
        )


def prune_track_before(
    cur: Cursor, cutoff_us: int, *, q: Callable[[str], str], wide_sum: str
) -> int:
    """Delete tracking rows before `cutoff_us` (an hour boundary) and their hourly rollups;
    take the pruned zone events off zone_state (read from the zone_hour rows deleted, which
    hold exactly them). Returns the raw events deleted."""
    cur.execute(
        q(
            f"SELECT {wide_sum}(enters), {wide_sum}(exits), {wide_sum}(lost_exits), source_id,"
            " zone, class_name FROM zone_hour WHERE bucket_us < ?"
            " GROUP BY source_id, zone, class_name ORDER BY source_id, zone, class_name"
        ),
        (cutoff_us,),
    )
    gone = [(sat(e), sat(x), sat(lo), s, z, c) for e, x, lo, s, z, c in cur.fetchall()]
    deleted = 0
    for table, col in (("crossings", "ts_us"), ("zone_events", "ts_us"), ("summaries", "start_us")):
        cur.execute(q(f"DELETE FROM {table} WHERE {col} < ?"), (cutoff_us,))
        deleted += int(cur.rowcount)
    cur.execute(q("DELETE FROM summary_classes WHERE start_us < ?"), (cutoff_us,))
    for table in ("crossing_hour", "zone_hour", "summary_hour", "summary_class_hour"):
        cur.execute(q(f"DELETE FROM {table} WHERE bucket_us < ?"), (cutoff_us,))
    if gone:
        cur.executemany(
            q(
                "UPDATE zone_state SET enters = enters - ?, exits = exits - ?,"
                " lost_exits = lost_exits - ? WHERE source_id = ? AND zone = ? AND class_name = ?"
            ),
            gone,
        )
        cur.execute("DELETE FROM zone_state WHERE enters <= 0 AND exits <= 0")
    return deleted
