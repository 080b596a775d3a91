"""The write side of the rollups: what new events add, what a prune takes away.

Four tables, all changed in the transaction that changes `events`: source_totals
(events, detections, latency sum, last event time per source), source_class_totals
(detections per source and class), and their per-minute cousins minute_rollup and
minute_class_rollup.

The sums are computed by the database, INSERT ... SELECT ... GROUP BY over the rows just
inserted (`NewRows`: SQLite names them by rowid, PostgreSQL keeps them in its staging
table), so no Python loop touches every event. Keys are upserted in
ORDER BY order, so concurrent writers lock rollup rows in the same order (no deadlocks).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from vision_stats.store.base import sat

Cursor = Any
Q = Callable[[str], str]
# floor of ts_us to its minute, also before 1970 (SQL `%` truncates towards zero)
MINUTE_OF_TS = "(events.ts_us - ((events.ts_us % 60000000) + 60000000) % 60000000)"


class NewRows(NamedTuple):
    """Where the rows just inserted are: a table (aliased `events`) and a condition."""

    table: str
    where: str
    params: tuple[Any, ...]


class Dialect(NamedTuple):
    q: Q
    greatest: str  # two-argument maximum
    json_classes: str  # FROM item: j.key, j.value per class of an `events` row
    json_value: str  # j.value as an integer
    sat_add: str  # "{a} + {b}" saturated at the int64 maximum instead of overflowing


# a + b, saturated: SQLite turns an overflowing integer sum into a REAL, MIN takes the cap;
# PostgreSQL adds in NUMERIC (no overflow), LEAST takes the cap, the cast fits
SQLITE_SAT_ADD = "MIN({a} + {b}, 9223372036854775807)"
POSTGRES_SAT_ADD = "CAST(LEAST(CAST({a} AS NUMERIC) + {b}, 9223372036854775807) AS BIGINT)"


# Per-connection scratch tables: the new rows are aggregated once (one pass over the
# rows, one JSON parse per event) and both the per-minute and the per-source rollups
# are fed from these small aggregates.
TEMP_TABLES = (
    "CREATE TEMP TABLE new_minute (bucket_us BIGINT, source_id TEXT, events BIGINT,"
    " detections BIGINT, latency_sum DOUBLE PRECISION, last_ts_us BIGINT)",
    "CREATE TEMP TABLE new_classes (bucket_us BIGINT, source_id TEXT, class_name TEXT,"
    " detections BIGINT)",
)


def add_new_rows(cur: Cursor, new: NewRows, d: Dialect) -> None:
    """Add the rows of `new` to the four rollup tables."""
    rows = f"FROM {new.table} WHERE {new.where}"
    classes = f"FROM {new.table}, {d.json_classes} WHERE {new.where} AND {d.json_value} > 0"
    cur.execute("DELETE FROM new_minute")
    cur.execute("DELETE FROM new_classes")
    cur.execute(
        d.q(
            f"INSERT INTO new_minute SELECT {MINUTE_OF_TS}, events.source_id, COUNT(*),"
            " SUM(events.detections_total), SUM(events.latency_ms), MAX(events.ts_us)"
            f" {rows} GROUP BY 1, 2"
        ),
        new.params,
    )
    cur.execute(
        d.q(
            f"INSERT INTO new_classes SELECT {MINUTE_OF_TS}, events.source_id, j.key,"
            f" SUM({d.json_value}) {classes} GROUP BY 1, 2, 3"
        ),
        new.params,
    )

    def add(table: str, col: str) -> str:
        return f"{col} = " + d.sat_add.format(a=f"{table}.{col}", b=f"excluded.{col}")

    cur.execute(
        "INSERT INTO minute_rollup (bucket_us, source_id, events, detections, latency_sum)"
        " SELECT bucket_us, source_id, events, detections, latency_sum FROM new_minute"
        " WHERE TRUE ORDER BY 1, 2"
        " ON CONFLICT (bucket_us, source_id) DO UPDATE SET"
        f" {add('minute_rollup', 'events')}, {add('minute_rollup', 'detections')},"
        " latency_sum = minute_rollup.latency_sum + excluded.latency_sum"
    )
    cur.execute(
        "INSERT INTO source_totals (source_id, events, detections, latency_sum, last_ts_us)"
        " SELECT source_id, SUM(events), SUM(detections), SUM(latency_sum), MAX(last_ts_us)"
        " FROM new_minute WHERE TRUE GROUP BY 1 ORDER BY 1"
        " ON CONFLICT (source_id) DO UPDATE SET"
        f" {add('source_totals', 'events')}, {add('source_totals', 'detections')},"
        " latency_sum = source_totals.latency_sum + excluded.latency_sum,"
        f" last_ts_us = {d.greatest}(source_totals.last_ts_us, excluded.last_ts_us)"
    )
    cur.execute(
        "INSERT INTO minute_class_rollup (bucket_us, source_id, class_name, detections)"
        " SELECT bucket_us, source_id, class_name, detections FROM new_classes"
        " WHERE TRUE ORDER BY 1, 2, 3"
        " ON CONFLICT (bucket_us, source_id, class_name) DO UPDATE SET"
        f" {add('minute_class_rollup', 'detections')}"
    )
    cur.execute(
        "INSERT INTO source_class_totals (source_id, class_name, detections)"
        " SELECT source_id, class_name, SUM(detections) FROM new_classes"
        " WHERE TRUE GROUP BY 1, 2 ORDER BY 1, 2"
        " ON CONFLICT (source_id, class_name) DO UPDATE SET"
        f" {add('source_class_totals', 'detections')}"
    )


def prune_before(cur: Cursor, cutoff_us: int, *, q: Q, wide_sum: str = "SUM") -> int:
    """Delete events before `cutoff_us` (a minute boundary) and take them off the rollups.

    The per-source amounts to subtract are read from the minute rollups being deleted,
    which hold exactly the events being deleted because the cutoff is a minute boundary.
    """
    cur.execute(
        q(
            f"SELECT {wide_sum}(events), {wide_sum}(detections), SUM(latency_sum), source_id"
            " FROM minute_rollup"
            " WHERE bucket_us < ? GROUP BY source_id ORDER BY source_id"
        ),
        (cutoff_us,),
    )
    gone = [(sat(e), sat(d), float(lat or 0.0), s) for e, d, lat, s in cur.fetchall()]
    cur.execute(
        q(
            f"SELECT {wide_sum}(detections), source_id, class_name FROM minute_class_rollup"
            " WHERE bucket_us < ? GROUP BY source_id, class_name ORDER BY source_id, class_name"
        ),
        (cutoff_us,),
    )
    gone_cls = [(sat(n), s, c) for n, s, c in cur.fetchall()]
    cur.execute(q("DELETE FROM events WHERE ts_us < ?"), (cutoff_us,))
    deleted = int(cur.rowcount)
    cur.execute(q("DELETE FROM minute_class_rollup WHERE bucket_us < ?"), (cutoff_us,))
    cur.execute(q("DELETE FROM minute_rollup WHERE bucket_us < ?"), (cutoff_us,))
    if gone:
        cur.executemany(
            q(
                "UPDATE source_totals SET events = events - ?, detections = detections - ?,"
                " latency_sum = latency_sum - ? WHERE source_id = ?"
            ),
            gone,
        )
        cur.execute("DELETE FROM source_totals WHERE events <= 0")
    if gone_cls:
        cur.executemany(
            q(
                "UPDATE source_class_totals SET detections = detections - ?"
                " WHERE source_id = ? AND class_name = ?"
            ),
            gone_cls,
        )
        cur.execute("DELETE FROM source_class_totals WHERE detections <= 0")
    return deleted
