"""`vision-stats doctor` for the tracking tables (see `doctor.py` for the events).

Rows written by hand, or by something older than the bounds, may hold what no reader
should meet. Reads already survive them (`track_read`); the doctor makes the data right:

- deleted: a row whose time no datetime can hold, a crossing whose direction is not
  in/out, a zone event whose action is not enter/exit, a summary's class row whose
  summary is gone (nothing can be inferred from them);
- clamped: track ids and frame indexes into 0..2**53-1, occupancy and class counts into
  0..1 000 000, a dwell that is negative or not finite to 0 (above the bound: the bound),
  `lost` to 0/1, a summary that ends before it starts to end = start;
- then the hourly rollups and zone_state are rebuilt from the rows, so every figure
  agrees with them again.

Rows are read in pages of 5 000 by primary key, in the doctor's transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from vision_core.types import MAX_DETECTIONS, MAX_FRAME_INDEX
from vision_stats.store.base import MAX_US, MIN_US, clamp, clamp_float, sat
from vision_stats.store.migrations import BACKFILL_TRACK_ROLLUPS, TRACK_ROLLUPS
from vision_stats.store.track_read import MAX_DWELL_SEC

__all__ = ["run_track_doctor"]

_PAGE = 5_000
Q = Callable[[str], str]


def _time_ok(value: Any) -> bool:
    return MIN_US <= sat(value) <= MAX_US


def _pages(cur: Any, q: Q, table: str, columns: str, key: str = "event_id") -> Any:
    """Every row of `table` (the key columns first in `columns`), in pages by key."""
    width = len(key.split(","))
    last: tuple[Any, ...] | None = None
    while True:
        cond = "" if last is None else f" WHERE ({key}) > ({', '.join('?' * width)})"
        cur.execute(
            q(f"SELECT {columns} FROM {table}{cond} ORDER BY {key} LIMIT ?"), (*(last or ()), _PAGE)
        )
        rows = cur.fetchall()
        if not rows:
            return
        yield from rows
        last = tuple(rows[-1][:width])


def run_track_doctor(cur: Any, q: Q, *, repair: bool) -> tuple[int, int, int]:
    """(rows read, rows deleted, rows clamped); with repair, fixed and rollups rebuilt."""
    rows = 0
    deletes: dict[str, list[tuple[Any, ...]]] = {
        "crossings": [], "zone_events": [], "summaries": [], "summary_classes": [],
    }  # fmt: skip
    crossings: list[tuple[Any, ...]] = []
    zones: list[tuple[Any, ...]] = []
    summaries: list[tuple[Any, ...]] = []
    classes: list[tuple[Any, ...]] = []

    for event_id, ts, direction, track, frame in _pages(
        cur, q, "crossings", "event_id, ts_us, direction, track_id, frame_index"
    ):
        rows += 1
        if not _time_ok(ts) or direction not in ("in", "out"):
            deletes["crossings"].append((event_id,))
            continue
        fixed = (clamp(track, MAX_FRAME_INDEX), clamp(frame, MAX_FRAME_INDEX))
        if fixed != (track, frame):
            crossings.append((*fixed, event_id))

    for event_id, ts, action, track, frame, dwell, occ, lost in _pages(
        cur,
        q,
        "zone_events",
        "event_id, ts_us, action, track_id, frame_index, dwell_sec, occupancy, lost",
    ):
        rows += 1
        if not _time_ok(ts) or action not in ("enter", "exit"):
            deletes["zone_events"].append((event_id,))
            continue
        fixed_z = (
            clamp(track, MAX_FRAME_INDEX),
            clamp(frame, MAX_FRAME_INDEX),
            clamp_float(dwell, MAX_DWELL_SEC),
            clamp(occ, MAX_DETECTIONS),
            1 if sat(lost) else 0,
        )
        if fixed_z != (track, frame, dwell, occ, lost):
            zones.append((*fixed_z, event_id))

    for event_id, start, end, frames in _pages(
        cur, q, "summaries", "event_id, start_us, end_us, frames"
    ):
        rows += 1
        if not (_time_ok(start) and _time_ok(end)):
            deletes["summaries"].append((event_id,))
            continue
        fixed_s = (max(sat(start), sat(end)), clamp(frames, MAX_FRAME_INDEX))
        if fixed_s != (end, frames):
            summaries.append((*fixed_s, event_id))

    # class rows of a summary that is gone, or is about to go (bad time)
    orphans = (
        "FROM summary_classes AS c WHERE NOT EXISTS (SELECT 1 FROM summaries AS s WHERE"
        " s.event_id = c.event_id AND s.start_us >= ? AND s.start_us <= ? AND s.end_us >= ?"
        " AND s.end_us <= ?)"
    )
    bounds = (MIN_US, MAX_US, MIN_US, MAX_US)
    cur.execute(q(f"SELECT COUNT(*) {orphans}"), bounds)
    orphaned = sat(cur.fetchone()[0])
    if repair and orphaned:
        cur.execute(
            q(f"DELETE FROM summary_classes WHERE event_id IN (SELECT c.event_id {orphans})"),
            bounds,
        )
    for event_id, name, start, det, trk, new in _pages(
        cur,
        q,
        "summary_classes",
        "event_id, class_name, start_us, detections, tracks, new_tracks",
        key="event_id, class_name",
    ):
        rows += 1
        if not _time_ok(start):
            deletes["summary_classes"].append((event_id, name))
            continue
        fixed_c = tuple(clamp(v, MAX_DETECTIONS) for v in (det, trk, new))
        if fixed_c != (det, trk, new):
            classes.append((*fixed_c, event_id, name))

    deleted = sum(len(v) for v in deletes.values()) + orphaned
    clamped = len(crossings) + len(zones) + len(summaries) + len(classes)
    if repair:
        for table, keys in deletes.items():
            if keys:
                cond = "event_id = ?" + (
                    " AND class_name = ?" if table == "summary_classes" else ""
                )
                cur.executemany(q(f"DELETE FROM {table} WHERE {cond}"), keys)
        updates = (
            ("UPDATE crossings SET track_id = ?, frame_index = ? WHERE event_id = ?", crossings),
            (
                "UPDATE zone_events SET track_id = ?, frame_index = ?, dwell_sec = ?,"
                " occupancy = ?, lost = ? WHERE event_id = ?",
                zones,
            ),
            ("UPDATE summaries SET end_us = ?, frames = ? WHERE event_id = ?", summaries),
            (
                "UPDATE summary_classes SET detections = ?, tracks = ?, new_tracks = ?"
                " WHERE event_id = ? AND class_name = ?",
                classes,
            ),
        )
        for sql, params in updates:
            if params:
                cur.executemany(q(sql), params)
        for table in TRACK_ROLLUPS:
            cur.execute(f"DELETE FROM {table}")
        for statement in BACKFILL_TRACK_ROLLUPS:
            cur.execute(statement)
    return rows, deleted, clamped
