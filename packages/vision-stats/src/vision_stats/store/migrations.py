"""Versioned schema, applied at start inside one transaction per engine.

The DDL is written once for both engines (BIGINT, DOUBLE PRECISION and TEXT mean the
same in SQLite and PostgreSQL). `schema_migrations` records what was applied; a database
newer than this code is refused rather than guessed at.

v1  events: one row per event_id, counts_by_class kept as JSON text; indexes on time
    and on (source, time).
v2  rollups kept by every insert, in the same transaction: source_totals and
    source_class_totals (overview, class totals, last-seen: O(sources) at any size),
    minute_rollup and minute_class_rollup (time series and time-range totals: class
    totals are a GROUP BY over class rows, not a loop over events); backfilled from v1
    rows with the engine's JSON functions.
v3  tracking events (`store/track_write.py`): crossings, zone_events, summaries (+ their
    per-class rows, summary_classes), each one row per event_id, indexed by time and by
    source (and line or zone) and time; hourly rollups kept by every insert: crossing_hour,
    zone_hour, summary_hour, summary_class_hour; zone_state (enters, exits per source, zone
    and class: occupancy now). New tables only: a v2 database keeps its rows untouched.

Engine-specific fragments: $JSON_CLASSES (a FROM item giving j.key, j.value for each
class of an `events` row) and $JSON_VALUE (j.value as an integer).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from vision_stats.errors import SchemaVersionError


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]


# floor of ts_us to its minute, also before 1970 (SQL `%` truncates towards zero)
_MINUTE_OF_TS = "ts_us - ((ts_us % 60000000) + 60000000) % 60000000"

# The rollups summed from `events` (v2's backfill, and `vision-stats doctor`'s rebuild).
BACKFILL_ROLLUPS: tuple[str, ...] = (
    """INSERT INTO source_totals (source_id, events, detections, latency_sum, last_ts_us)
       SELECT source_id, COUNT(*), SUM(detections_total), SUM(latency_ms), MAX(ts_us)
       FROM events GROUP BY source_id""",
    """INSERT INTO source_class_totals (source_id, class_name, detections)
       SELECT source_id, j.key, SUM($JSON_VALUE) FROM events, $JSON_CLASSES
       WHERE $JSON_VALUE > 0 GROUP BY source_id, j.key""",
    f"""INSERT INTO minute_rollup (bucket_us, source_id, events, detections, latency_sum)
       SELECT {_MINUTE_OF_TS}, source_id, COUNT(*), SUM(detections_total),
              SUM(latency_ms)
       FROM events GROUP BY {_MINUTE_OF_TS}, source_id""",
    f"""INSERT INTO minute_class_rollup (bucket_us, source_id, class_name, detections)
       SELECT {_MINUTE_OF_TS}, source_id, j.key, SUM($JSON_VALUE)
       FROM events, $JSON_CLASSES WHERE $JSON_VALUE > 0
       GROUP BY {_MINUTE_OF_TS}, source_id, j.key""",
)


# floor of a microsecond column to its hour, also before 1970
def hour_of(col: str) -> str:
    return f"({col} - (({col} % 3600000000) + 3600000000) % 3600000000)"


# The hourly tracking rollups and zone_state summed from the raw rows (v3 creates them
# empty; `vision-stats doctor` rebuilds them with these).
BACKFILL_TRACK_ROLLUPS: tuple[str, ...] = (
    f"""INSERT INTO crossing_hour (bucket_us, source_id, line, class_name, direction, crossings)
       SELECT {hour_of("ts_us")}, source_id, line, class_name, direction, COUNT(*)
       FROM crossings WHERE direction IN ('in', 'out') GROUP BY 1, 2, 3, 4, 5""",
    f"""INSERT INTO zone_hour (bucket_us, source_id, zone, class_name, enters, exits,
                               lost_exits, dwell_sum, dwell_max)
       SELECT {hour_of("ts_us")}, source_id, zone, class_name,
              SUM(CASE WHEN action = 'enter' THEN 1 ELSE 0 END),
              SUM(CASE WHEN action = 'exit' THEN 1 ELSE 0 END),
              SUM(CASE WHEN action = 'exit' AND lost <> 0 THEN 1 ELSE 0 END),
              SUM(CASE WHEN action = 'exit' THEN dwell_sec ELSE 0 END),
              MAX(CASE WHEN action = 'exit' THEN dwell_sec ELSE 0 END)
       FROM zone_events WHERE action IN ('enter', 'exit') GROUP BY 1, 2, 3, 4""",
    """INSERT INTO zone_state (source_id, zone, class_name, enters, exits, lost_exits)
       SELECT source_id, zone, class_name, SUM(enters), SUM(exits), SUM(lost_exits)
       FROM zone_hour GROUP BY 1, 2, 3""",
    f"""INSERT INTO summary_hour (bucket_us, source_id, intervals, frames)
       SELECT {hour_of("start_us")}, source_id, COUNT(*), SUM(frames)
       FROM summaries GROUP BY 1, 2""",
    f"""INSERT INTO summary_class_hour (bucket_us, source_id, class_name, detections, tracks,
                                        new_tracks)
       SELECT {hour_of("start_us")}, source_id, class_name, SUM(detections), SUM(tracks),
              SUM(new_tracks)
       FROM summary_classes GROUP BY 1, 2, 3""",
)
TRACK_ROLLUPS = ("crossing_hour", "zone_hour", "zone_state", "summary_hour", "summary_class_hour")

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "events, indexed by time and by source and time",
        (
            """CREATE TABLE events (
                event_id TEXT PRIMARY KEY,
                ts_us BIGINT NOT NULL,
                source_id TEXT NOT NULL,
                mode TEXT NOT NULL,
                frame_index BIGINT NOT NULL,
                latency_ms DOUBLE PRECISION NOT NULL,
                detections_total BIGINT NOT NULL,
                model TEXT NOT NULL DEFAULT '',
                counts_json TEXT NOT NULL DEFAULT '{}'
            )""",
            "CREATE INDEX events_ts ON events (ts_us)",
            "CREATE INDEX events_source_ts ON events (source_id, ts_us)",
        ),
    ),
    Migration(
        2,
        "rollups for overview, class totals, last-seen and time series",
        (
            """CREATE TABLE source_totals (
                source_id TEXT PRIMARY KEY,
                events BIGINT NOT NULL,
                detections BIGINT NOT NULL,
                latency_sum DOUBLE PRECISION NOT NULL,
                last_ts_us BIGINT NOT NULL
            )""",
            """CREATE TABLE source_class_totals (
                source_id TEXT NOT NULL,
                class_name TEXT NOT NULL,
                detections BIGINT NOT NULL,
                PRIMARY KEY (source_id, class_name)
            )""",
            """CREATE TABLE minute_rollup (
                bucket_us BIGINT NOT NULL,
                source_id TEXT NOT NULL,
                events BIGINT NOT NULL,
                detections BIGINT NOT NULL,
                latency_sum DOUBLE PRECISION NOT NULL,
                PRIMARY KEY (bucket_us, source_id)
            )""",
            """CREATE TABLE minute_class_rollup (
                bucket_us BIGINT NOT NULL,
                source_id TEXT NOT NULL,
                class_name TEXT NOT NULL,
                detections BIGINT NOT NULL,
                PRIMARY KEY (bucket_us, source_id, class_name)
            )""",
            *BACKFILL_ROLLUPS,
        ),
    ),
    Migration(
        3,
        "tracking events: crossings, zone events, interval summaries and their hourly rollups",
        (
            """CREATE TABLE crossings (
                event_id TEXT PRIMARY KEY,
                ts_us BIGINT NOT NULL,
                source_id TEXT NOT NULL,
                line TEXT NOT NULL,
                direction TEXT NOT NULL,
                class_name TEXT NOT NULL,
                track_id BIGINT NOT NULL,
                model TEXT NOT NULL DEFAULT '',
                frame_index BIGINT NOT NULL DEFAULT 0
            )""",
            "CREATE INDEX crossings_ts ON crossings (ts_us)",
            "CREATE INDEX crossings_source_ts ON crossings (source_id, ts_us)",
            """CREATE TABLE zone_events (
                event_id TEXT PRIMARY KEY,
                ts_us BIGINT NOT NULL,
                source_id TEXT NOT NULL,
                zone TEXT NOT NULL,
                action TEXT NOT NULL,
                class_name TEXT NOT NULL,
                track_id BIGINT NOT NULL,
                model TEXT NOT NULL DEFAULT '',
                frame_index BIGINT NOT NULL DEFAULT 0,
                dwell_sec DOUBLE PRECISION NOT NULL DEFAULT 0,
                occupancy BIGINT NOT NULL DEFAULT 0,
                lost SMALLINT NOT NULL DEFAULT 0
            )""",
            "CREATE INDEX zone_events_ts ON zone_events (ts_us)",
            "CREATE INDEX zone_events_source_zone_ts ON zone_events (source_id, zone, ts_us)",
            """CREATE TABLE summaries (
                event_id TEXT PRIMARY KEY,
                start_us BIGINT NOT NULL,
                end_us BIGINT NOT NULL,
                source_id TEXT NOT NULL,
                frames BIGINT NOT NULL,
                model TEXT NOT NULL DEFAULT ''
            )""",
            "CREATE INDEX summaries_start ON summaries (start_us)",
            "CREATE INDEX summaries_source_start ON summaries (source_id, start_us)",
            """CREATE TABLE summary_classes (
                event_id TEXT NOT NULL,
                class_name TEXT NOT NULL,
                start_us BIGINT NOT NULL,
                source_id TEXT NOT NULL,
                detections BIGINT NOT NULL,
                tracks BIGINT NOT NULL,
                new_tracks BIGINT NOT NULL,
                PRIMARY KEY (event_id, class_name)
            )""",
            "CREATE INDEX summary_classes_start ON summary_classes (start_us)",
            "CREATE INDEX summary_classes_source_start ON summary_classes (source_id, start_us)",
            """CREATE TABLE crossing_hour (
                bucket_us BIGINT NOT NULL,
                source_id TEXT NOT NULL,
                line TEXT NOT NULL,
                class_name TEXT NOT NULL,
                direction TEXT NOT NULL,
                crossings BIGINT NOT NULL,
                PRIMARY KEY (bucket_us, source_id, line, class_name, direction)
            )""",
            "CREATE INDEX crossing_hour_source ON crossing_hour (source_id, line, bucket_us)",
            """CREATE TABLE zone_hour (
                bucket_us BIGINT NOT NULL,
                source_id TEXT NOT NULL,
                zone TEXT NOT NULL,
                class_name TEXT NOT NULL,
                enters BIGINT NOT NULL,
                exits BIGINT NOT NULL,
                lost_exits BIGINT NOT NULL,
                dwell_sum DOUBLE PRECISION NOT NULL,
                dwell_max DOUBLE PRECISION NOT NULL,
                PRIMARY KEY (bucket_us, source_id, zone, class_name)
            )""",
            "CREATE INDEX zone_hour_source ON zone_hour (source_id, zone, bucket_us)",
            """CREATE TABLE zone_state (
                source_id TEXT NOT NULL,
                zone TEXT NOT NULL,
                class_name TEXT NOT NULL,
                enters BIGINT NOT NULL,
                exits BIGINT NOT NULL,
                lost_exits BIGINT NOT NULL,
                PRIMARY KEY (source_id, zone, class_name)
            )""",
            """CREATE TABLE summary_hour (
                bucket_us BIGINT NOT NULL,
                source_id TEXT NOT NULL,
                intervals BIGINT NOT NULL,
                frames BIGINT NOT NULL,
                PRIMARY KEY (bucket_us, source_id)
            )""",
            "CREATE INDEX summary_hour_source ON summary_hour (source_id, bucket_us)",
            """CREATE TABLE summary_class_hour (
                bucket_us BIGINT NOT NULL,
                source_id TEXT NOT NULL,
                class_name TEXT NOT NULL,
                detections BIGINT NOT NULL,
                tracks BIGINT NOT NULL,
                new_tracks BIGINT NOT NULL,
                PRIMARY KEY (bucket_us, source_id, class_name)
            )""",
            "CREATE INDEX summary_class_hour_source ON summary_class_hour (source_id, bucket_us)",
        ),
    ),
)

LATEST_VERSION = MIGRATIONS[-1].version


def run_statements(cur: Any, statements: Iterable[str], json_classes: str, json_value: str) -> None:
    """Execute DDL/backfill statements with the engine's JSON fragments filled in."""
    for statement in statements:
        sql = statement.replace("$JSON_CLASSES", json_classes)
        cur.execute(sql.replace("$JSON_VALUE", json_value))


_CREATE_LEDGER = """CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    applied_us BIGINT NOT NULL
)"""


def current_version(cur: Any) -> int:
    cur.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")
    return int(cur.fetchone()[0])


def migrate(
    cur: Any,
    *,
    q: Callable[[str], str],
    json_classes: str,
    json_value: str,
    target: int | None = None,
) -> int:
    """Apply the missing migrations up to `target` (default: all) with `cur`.

    The caller holds the transaction and the lock that keeps two processes from
    migrating at once; `q` turns `?` placeholders into the engine's.
    """
    cur.execute(_CREATE_LEDGER)
    version = current_version(cur)
    if version > LATEST_VERSION:
        raise SchemaVersionError(
            f"the database has schema version {version}, newer than the {LATEST_VERSION} "
            "this vision-stats knows: upgrade vision-stats (pip install -U vision-stats)"
        )
    goal = LATEST_VERSION if target is None else min(target, LATEST_VERSION)
    for migration in MIGRATIONS:
        if version < migration.version <= goal:
            run_statements(cur, migration.statements, json_classes, json_value)
            cur.execute(
                q("INSERT INTO schema_migrations (version, name, applied_us) VALUES (?, ?, ?)"),
                (migration.version, migration.name, time.time_ns() // 1000),
            )
            version = migration.version
    return version
