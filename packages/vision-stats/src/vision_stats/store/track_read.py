"""The read side of the tracking tables: line counts, zone occupancy, dwell, summaries.

Time buckets are UTC minutes, hours or days. A range is widened to whole buckets (since
rounded down, until rounded up; without since: the last 60 minutes, 24 hours or 30 days
up to now) and may hold at most MAX_BUCKETS buckets. Hour and day buckets are read from
the hourly rollups (one row per source, line or zone, class and hour, whatever the
traffic); minute buckets from the raw rows through their time index.

Zone occupancy now, per source, zone and class, is enters minus exits over every stored
zone event (zone_state), never below 0. A track the device lost while inside a zone
leaves it with an exit marked `lost` (sent when the device gives the track up): it counts
as an exit, so occupancy does not keep objects that left unseen; lost exits are also
counted apart. Occupancy over time is the same figure at the end of each bucket, worked
back from now: occupancy(end of bucket i) = occupancy now - (enters - exits) after it.

Reads never break on stored data: sums are read wide and saturated (`sat`), dwell values
that are negative, NaN or above the bound are left out, an unknown direction or action
counts nowhere.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime
from typing import Any, NamedTuple

from vision_core.types import MAX_LATENCY_MS
from vision_stats.errors import InvalidQueryError
from vision_stats.models import (
    CountRow,
    CountSeries,
    CountTotal,
    DwellStats,
    SummaryBucket,
    SummarySeries,
    TrackBucket,
    ZoneOccupancy,
    ZoneSeries,
    ZoneTrack,
)
from vision_stats.store.base import (
    HOUR_US,
    MINUTE_US,
    ceil_to,
    from_us,
    sat,
    widen,
)

Cursor = Any
Q = Callable[[str], str]
DAY_US = 24 * HOUR_US
TRACK_BUCKET_US: dict[str, int] = {"minute": MINUTE_US, "hour": HOUR_US, "day": DAY_US}
DEFAULT_BUCKETS: dict[str, int] = {"minute": 60, "hour": 24, "day": 30}
MAX_DWELL_SEC = MAX_LATENCY_MS * 3650  # vision_core.types.DwellSec
_ENTER = "CASE WHEN action = 'enter' THEN 1 ELSE 0 END"
_EXIT = "CASE WHEN action = 'exit' THEN 1 ELSE 0 END"
_LOST = "CASE WHEN action = 'exit' AND lost <> 0 THEN 1 ELSE 0 END"
_VALID_DWELL = f"dwell_sec >= 0 AND dwell_sec <= {MAX_DWELL_SEC!r}"
_DWELL = f"CASE WHEN action = 'exit' AND {_VALID_DWELL} THEN dwell_sec ELSE 0 END"
_DWELL_N = f"CASE WHEN action = 'exit' AND {_VALID_DWELL} THEN 1 ELSE 0 END"


def _num(value: Any) -> float:
    """A float for JSON: None, NaN and infinities (a poisoned row) read as 0."""
    try:
        f = float(value) if value is not None else 0.0
    except (TypeError, ValueError):
        return 0.0
    return f if math.isfinite(f) else 0.0


class Window(NamedTuple):
    """A range widened to whole buckets: `buckets` buckets of `width` µs from `start`."""

    bucket: TrackBucket
    start: int
    buckets: int
    width: int

    @property
    def end(self) -> int:
        return self.start + self.buckets * self.width


def window(
    bucket: TrackBucket, since: datetime | None, until: datetime | None, now: datetime
) -> Window:
    """The range [since, until) widened to whole buckets (without since: the last 60
    minutes, 24 hours or 30 days up to until or now)."""
    if bucket not in TRACK_BUCKET_US:
        raise InvalidQueryError(
            f"bucket: expected 'minute', 'hour' or 'day', got {bucket!r}", field="bucket"
        )
    if since is not None and until is not None and since >= until:
        raise InvalidQueryError(
            f"since ({since.isoformat()}) must be before until ({until.isoformat()})",
            field="since",
        )
    width = TRACK_BUCKET_US[bucket]
    start, count = widen(
        bucket, width, DEFAULT_BUCKETS[bucket], since, until, now, wider="use a wider bucket"
    )
    if count <= 0:
        raise InvalidQueryError(
            f"since ({from_us(start).isoformat()}) is after until or now", field="since"
        )
    return Window(bucket, start, count, width)


def _filters(pairs: tuple[tuple[str, str | None], ...]) -> tuple[str, list[Any]]:
    """` AND col = ?` for each (col, value) whose value is given."""
    sql = "".join(f" AND {col} = ?" for col, value in pairs if value is not None)
    return sql, [value for _, value in pairs if value is not None]


def read_counts(
    cur: Cursor, q: Q, wide_sum: str, win: Window, source: str | None, line: str | None
) -> CountSeries:
    bucket, start, _, width = win
    end = win.end
    flt, params = _filters((("source_id", source), ("line", line)))
    if bucket == "minute":
        sql = (
            "SELECT (ts_us - ?) / ?, line, class_name, direction, COUNT(*) FROM crossings"
            f" WHERE ts_us >= ? AND ts_us < ?{flt} GROUP BY 1, 2, 3, 4"
        )
    else:
        sql = (
            f"SELECT (bucket_us - ?) / ?, line, class_name, direction, {wide_sum}(crossings)"
            f" FROM crossing_hour WHERE bucket_us >= ? AND bucket_us < ?{flt} GROUP BY 1, 2, 3, 4"
        )
    cur.execute(q(sql), (start, width, start, end, *params))
    cells: dict[tuple[int, str, str], list[int]] = defaultdict(lambda: [0, 0])
    for b, ln, cls, direction, n in cur.fetchall():
        if direction in ("in", "out"):
            cell = cells[(int(b), str(ln), str(cls))]
            i = 0 if direction == "in" else 1
            cell[i] = sat(cell[i] + sat(n))
    totals: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    rows = []
    for (b, ln, cls), (n_in, n_out) in sorted(cells.items()):
        rows.append(CountRow(from_us(start + b * width), ln, cls, n_in, n_out))
        t = totals[(ln, cls)]
        t[0], t[1] = sat(t[0] + n_in), sat(t[1] + n_out)
    by_class: dict[str, int] = defaultdict(int)
    for (_ln, cls), (n_in, n_out) in totals.items():
        by_class[cls] += n_in + n_out
    return CountSeries(
        bucket=bucket,
        since_utc=from_us(start),
        until_utc=from_us(end),
        lines=sorted({ln for ln, _ in totals}),
        classes=sorted(by_class, key=lambda c: (-by_class[c], c)),
        rows=rows,
        totals=[CountTotal(ln, cls, i, o) for (ln, cls), (i, o) in sorted(totals.items())],
    )


def read_occupancy(cur: Cursor, q: Q, source: str | None, zone: str | None) -> list[ZoneOccupancy]:
    flt, params = _filters((("source_id", source), ("zone", zone)))
    cur.execute(
        q(
            "SELECT source_id, zone, class_name, enters, exits, lost_exits FROM zone_state"
            f" WHERE TRUE{flt} ORDER BY source_id, zone, class_name"
        ),
        params,
    )
    state: dict[tuple[str, str], list[tuple[str, int, int, int]]] = defaultdict(list)
    for src, zn, cls, enters, exits, lost in cur.fetchall():
        state[(str(src), str(zn))].append((str(cls), sat(enters), sat(exits), sat(lost)))
    latest = (
        "SELECT {col} FROM zone_events AS e WHERE e.source_id = k.source_id"
        " AND e.zone = k.zone ORDER BY e.ts_us DESC, e.event_id DESC LIMIT 1"
    )
    cur.execute(
        q(
            f"SELECT k.source_id, k.zone, ({latest.format(col='e.ts_us')}),"
            f" ({latest.format(col='e.occupancy')})"
            f" FROM (SELECT DISTINCT source_id, zone FROM zone_state WHERE TRUE{flt}) AS k"
        ),
        params,
    )
    reported = {(str(s), str(z)): (ts, occ) for s, z, ts, occ in cur.fetchall()}
    out = []
    for key, classes in sorted(state.items()):
        by_class = {c: max(0, e - x) for c, e, x, _ in classes if e - x > 0}
        ts, occ = reported.get(key, (None, None))
        out.append(
            ZoneOccupancy(
                source_id=key[0],
                zone=key[1],
                occupancy=sat(sum(by_class.values())),
                by_class=by_class,
                enters=sat(sum(e for _, e, _, _ in classes)),
                exits=sat(sum(x for _, _, x, _ in classes)),
                lost_exits=sat(sum(lo for *_, lo in classes)),
                reported_occupancy=max(0, sat(occ)),
                last_event_utc=from_us(ts) if ts is not None else None,
            )
        )
    return out


def read_zone_series(
    cur: Cursor, q: Q, wide_sum: str, win: Window, source: str | None, zone: str | None
) -> ZoneSeries:
    bucket, start, count, width = win
    end = win.end
    flt, params = _filters((("source_id", source), ("zone", zone)))
    w = wide_sum
    cur.execute(
        q(
            f"SELECT zone, class_name, {w}(enters) - {w}(exits) FROM zone_state WHERE TRUE{flt}"
            " GROUP BY 1, 2"
        ),
        params,
    )
    net_now = {(str(z), str(c)): sat(n) for z, c, n in cur.fetchall()}
    # enters - exits after the range: whole hours from zone_hour, the rest from raw events
    after: dict[tuple[str, str], int] = defaultdict(int)
    hour_end = ceil_to(end, HOUR_US)
    cur.execute(
        q(
            f"SELECT zone, class_name, {w}(enters) - {w}(exits) FROM zone_hour"
            f" WHERE bucket_us >= ?{flt} GROUP BY 1, 2"
        ),
        (hour_end, *params),
    )
    for z, c, n in cur.fetchall():
        after[(str(z), str(c))] += sat(n)
    if hour_end > end:
        cur.execute(
            q(
                f"SELECT zone, class_name, SUM({_ENTER}) - SUM({_EXIT}) FROM zone_events"
                f" WHERE ts_us >= ? AND ts_us < ?{flt} GROUP BY 1, 2"
            ),
            (end, hour_end, *params),
        )
        for z, c, n in cur.fetchall():
            after[(str(z), str(c))] += sat(n)
    if bucket == "minute":
        sql = (
            f"SELECT (ts_us - ?) / ?, zone, class_name, SUM({_ENTER}), SUM({_EXIT}),"
            f" SUM({_LOST}), SUM({_DWELL}), SUM({_DWELL_N}) FROM zone_events"
            f" WHERE ts_us >= ? AND ts_us < ?{flt} GROUP BY 1, 2, 3"
        )
    else:
        sql = (
            f"SELECT (bucket_us - ?) / ?, zone, class_name, {w}(enters), {w}(exits),"
            f" {w}(lost_exits), SUM(dwell_sum), {w}(exits) FROM zone_hour"
            f" WHERE bucket_us >= ? AND bucket_us < ?{flt} GROUP BY 1, 2, 3"
        )
    cur.execute(q(sql), (start, width, start, end, *params))
    cells: dict[tuple[str, str], dict[int, tuple[int, int, int, float, int]]] = defaultdict(dict)
    for b, z, c, enters, exits, lost, dwell, dwell_n in cur.fetchall():
        cells[(str(z), str(c))][int(b)] = (
            sat(enters),
            sat(exits),
            sat(lost),
            _num(dwell),
            sat(dwell_n),
        )
    zones = []
    for key in sorted({*net_now, *after, *cells}):
        per = cells.get(key, {})
        empty = (0, 0, 0, 0.0, 0)
        values = [per.get(i, empty) for i in range(count)]
        occupancy = [0] * count
        level = net_now.get(key, 0) - after.get(key, 0)
        for i in range(count - 1, -1, -1):
            occupancy[i] = level
            level -= values[i][0] - values[i][1]
        if not per and not any(occupancy):
            continue
        zones.append(
            ZoneTrack(
                zone=key[0],
                class_name=key[1],
                enters=[v[0] for v in values],
                exits=[v[1] for v in values],
                lost_exits=[v[2] for v in values],
                occupancy=[max(0, sat(o)) for o in occupancy],
                mean_dwell_sec=[v[3] / v[4] if v[4] > 0 else None for v in values],
            )
        )
    return ZoneSeries(
        bucket=bucket,
        since_utc=from_us(start),
        until_utc=from_us(end),
        buckets=[from_us(start + i * width) for i in range(count)],
        zones=zones,
    )


def _rank(values: list[float], p: int) -> float:
    """Nearest-rank percentile p (integer percent) of sorted values."""
    return values[max(0, (p * len(values) + 99) // 100 - 1)]


def read_dwell(
    cur: Cursor,
    q: Q,
    lo: int,
    hi: int,
    source: str | None,
    zone: str | None,
    *,
    in_sql: bool,
) -> list[DwellStats]:
    """Dwell of the exits in [lo, hi) per zone and class: exact nearest-rank p50/p95
    (percentile_disc in PostgreSQL, sorted here for SQLite)."""
    flt, params = _filters((("source_id", source), ("zone", zone)))
    where = f"WHERE ts_us >= ? AND ts_us < ? AND action = 'exit' AND {_VALID_DWELL}{flt}"
    lost = "CASE WHEN lost <> 0 THEN 1 ELSE 0 END"
    if in_sql:
        cur.execute(
            q(
                f"SELECT zone, class_name, COUNT(*), SUM({lost}), AVG(dwell_sec),"
                " percentile_disc(0.5) WITHIN GROUP (ORDER BY dwell_sec),"
                " percentile_disc(0.95) WITHIN GROUP (ORDER BY dwell_sec), MAX(dwell_sec)"
                f" FROM zone_events {where} GROUP BY 1, 2 ORDER BY 1, 2"
            ),
            (lo, hi, *params),
        )
        return [
            DwellStats(str(z), str(c), sat(n), sat(nl), _num(mean), _num(p50), _num(p95), _num(mx))
            for z, c, n, nl, mean, p50, p95, mx in cur.fetchall()
        ]
    cur.execute(
        q(f"SELECT zone, class_name, dwell_sec, {lost} FROM zone_events {where}"), (lo, hi, *params)
    )
    groups: dict[tuple[str, str], list[float]] = defaultdict(list)
    lost_n: dict[tuple[str, str], int] = defaultdict(int)
    for z, c, dwell, is_lost in cur.fetchall():
        key = (str(z), str(c))
        groups[key].append(_num(dwell))
        lost_n[key] += sat(is_lost)
    out = []
    for key, values in sorted(groups.items()):
        values.sort()
        out.append(
            DwellStats(
                zone=key[0],
                class_name=key[1],
                exits=len(values),
                lost_exits=lost_n[key],
                mean_sec=math.fsum(values) / len(values),
                p50_sec=_rank(values, 50),
                p95_sec=_rank(values, 95),
                max_sec=values[-1],
            )
        )
    return out


def read_summaries(
    cur: Cursor, q: Q, wide_sum: str, win: Window, source: str | None
) -> SummarySeries:
    bucket, start, count, width = win
    end = win.end
    flt, params = _filters((("source_id", source),))
    w = wide_sum
    if bucket == "minute":
        head = ("summaries", "start_us", "COUNT(*)", f"{w}(frames)")
        cls_table, col = "summary_classes", "start_us"
    else:
        head = ("summary_hour", "bucket_us", f"{w}(intervals)", f"{w}(frames)")
        cls_table, col = "summary_class_hour", "bucket_us"
    table, tcol, intervals, frames = head
    cur.execute(
        q(
            f"SELECT ({tcol} - ?) / ?, {intervals}, {frames} FROM {table}"
            f" WHERE {tcol} >= ? AND {tcol} < ?{flt} GROUP BY 1"
        ),
        (start, width, start, end, *params),
    )
    heads = {int(b): (sat(n), sat(f)) for b, n, f in cur.fetchall()}
    cur.execute(
        q(
            f"SELECT ({col} - ?) / ?, class_name, {w}(detections), {w}(tracks), {w}(new_tracks)"
            f" FROM {cls_table} WHERE {col} >= ? AND {col} < ?{flt} GROUP BY 1, 2"
        ),
        (start, width, start, end, *params),
    )
    dets: dict[int, dict[str, int]] = defaultdict(dict)
    tracks: dict[int, dict[str, int]] = defaultdict(dict)
    new: dict[int, dict[str, int]] = defaultdict(dict)
    rank: dict[str, tuple[int, int]] = {}
    for b, c, d, t, n in cur.fetchall():
        i, name = int(b), str(c)
        for target, value in ((dets, d), (tracks, t), (new, n)):
            if sat(value) > 0:
                target[i][name] = sat(value)
        r = rank.get(name, (0, 0))
        rank[name] = (sat(r[0] + sat(n)), sat(r[1] + sat(d)))
    buckets = [
        SummaryBucket(
            ts_utc=from_us(start + i * width),
            intervals=heads.get(i, (0, 0))[0],
            frames=heads.get(i, (0, 0))[1],
            detections_by_class=dets.get(i, {}),
            tracks_by_class=tracks.get(i, {}),
            new_tracks_by_class=new.get(i, {}),
        )
        for i in range(count)
    ]
    classes = sorted(rank, key=lambda c: (-rank[c][0], -rank[c][1], c))
    return SummarySeries(bucket, from_us(start), from_us(end), classes, buckets)
