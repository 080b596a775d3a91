"""`vision-stats doctor`: heal a database that holds rows no reader should meet.

Rows written before the bounds of `vision_core.types` existed (or by hand) may hold a
time no datetime can hold, integers beyond the caps (or negative, or beyond int64 in a
rollup), a non-finite latency, or a counts_json that is not a JSON object of bounded
counts. Reads already survive them (`base.sat`, `base.from_us`, the safe JSON readers);
the doctor makes the data right:

- an event whose time is outside what every reader can hold is deleted (no clock can
  have meant it);
- integers are clamped into their caps, a non-finite or negative latency becomes 0, a
  latency above the cap becomes the cap, counts_json is rewritten with clamped counts
  (`{}` when it does not parse);
- the four rollups are rebuilt from the events, so every total agrees with them again.

Everything happens in one transaction; `--check` only counts. Events are read in pages of
5 000 by event_id, so memory stays flat on a large database.
"""

from __future__ import annotations

import math
from typing import Any

import msgspec

from vision_core.types import MAX_CLASSES, MAX_DETECTIONS, MAX_FRAME_INDEX, MAX_LATENCY_MS
from vision_stats.store.base import MAX_US, MIN_US, clamp, clamp_float, sat
from vision_stats.store.migrations import BACKFILL_ROLLUPS, run_statements
from vision_stats.store.rollups import Dialect

__all__ = ["run_doctor"]

_PAGE = 5_000
_ROLLUPS = ("source_totals", "source_class_totals", "minute_rollup", "minute_class_rollup")
_encoder = msgspec.json.Encoder()


def _counts(text: Any) -> str:
    try:
        counts = msgspec.json.decode(str(text))
    except (msgspec.DecodeError, UnicodeEncodeError):
        return "{}"
    if not isinstance(counts, dict):
        return "{}"
    fixed: dict[str, int] = {}
    for name, n in list(counts.items())[:MAX_CLASSES]:
        if isinstance(n, (int, float)) and not isinstance(n, bool):
            fixed[str(name)[:200]] = clamp(n if math.isfinite(n) else 0, MAX_DETECTIONS)
    return _encoder.encode(fixed).decode()


def run_doctor(cur: Any, d: Dialect, *, repair: bool) -> tuple[int, int, int, int]:
    """(events, bad_time, bad_numbers, bad_counts); with repair, fixed and rollups rebuilt."""
    q = d.q
    events = bad_time = bad_numbers = bad_counts = 0
    delete: list[tuple[str]] = []
    update: list[tuple[int, float, int, str, str]] = []
    last = ""
    while True:
        cur.execute(
            q(
                "SELECT event_id, ts_us, frame_index, latency_ms, detections_total, counts_json"
                " FROM events WHERE event_id > ? ORDER BY event_id LIMIT ?"
            ),
            (last, _PAGE),
        )
        rows = cur.fetchall()
        if not rows:
            break
        for event_id, ts_us, frame_index, latency, detections, counts in rows:
            events += 1
            if not MIN_US <= sat(ts_us) <= MAX_US:
                bad_time += 1
                delete.append((event_id,))
                continue
            fixed = (
                clamp(frame_index, MAX_FRAME_INDEX),
                clamp_float(latency, MAX_LATENCY_MS),
                clamp(detections, MAX_DETECTIONS),
            )
            numbers_ok = fixed == (frame_index, latency, detections)
            fixed_counts = _counts(counts)
            counts_ok = msgspec.json.decode(fixed_counts) == _try_decode(counts)
            bad_numbers += not numbers_ok
            bad_counts += not counts_ok
            if not (numbers_ok and counts_ok):
                update.append((*fixed, fixed_counts, event_id))
        last = str(rows[-1][0])
    if repair:
        if delete:
            cur.executemany(q("DELETE FROM events WHERE event_id = ?"), delete)
        if update:
            cur.executemany(
                q(
                    "UPDATE events SET frame_index = ?, latency_ms = ?, detections_total = ?,"
                    " counts_json = ? WHERE event_id = ?"
                ),
                update,
            )
        for table in _ROLLUPS:
            cur.execute(f"DELETE FROM {table}")
        run_statements(cur, BACKFILL_ROLLUPS, d.json_classes, d.json_value)
    return events, bad_time, bad_numbers, bad_counts


def _try_decode(text: Any) -> object:
    try:
        return msgspec.json.decode(str(text))
    except (msgspec.DecodeError, UnicodeEncodeError):
        return None
