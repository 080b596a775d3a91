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
