"""PostgreSQL engine (psycopg 3): the same schema and queries, a bulk-insert path.

A batch is COPYed into a per-connection temporary table, then moved into `events` with
INSERT ... SELECT ... ON CONFLICT (event_id) DO NOTHING RETURNING event_id: one round
trip answers which event_ids are new, and a concurrent insert of the same event_id waits
for ours and then skips it. The staged rows that were not new are dropped, and the
rollups are summed from what is left with the same INSERT ... SELECT ... GROUP BY as
SQLite (`rollups.py`). Migrations take a transaction-scoped advisory lock, so two
services starting at once migrate once.

The schema is the first one on the DSN's search_path
(`postgresql://host/db?options=-csearch_path%3Dstats`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

import psycopg
from psycopg import errors as pg_errors

from vision_core.secrets import redact_dsn, scrub
from vision_stats.errors import StoreError, StoreUnavailableError
from vision_stats.store.base import EVENT_COLUMNS, EventRow
from vision_stats.store.pool import ConnectionPool
from vision_stats.store.rollups import POSTGRES_SAT_ADD, TEMP_TABLES, NewRows
from vision_stats.store.series import percentiles_in_sql
from vision_stats.store.sql import Cursor, StatsStore
from vision_stats.store.track_write import Table

T = TypeVar("T")
_COLS = ", ".join(EVENT_COLUMNS)
_STAGE = (
    "CREATE TEMP TABLE stage_events (event_id TEXT, ts_us BIGINT, source_id TEXT, mode TEXT,"
    " frame_index BIGINT, latency_ms DOUBLE PRECISION, detections_total BIGINT, model TEXT,"
    " counts_json TEXT) ON COMMIT DELETE ROWS"
)
_MOVE_STAGED = (
    f"INSERT INTO events ({_COLS}) SELECT {_COLS} FROM stage_events ORDER BY event_id"
    " ON CONFLICT (event_id) DO NOTHING RETURNING event_id"
)
_SCHEMA_LOCK = (
    "SELECT pg_advisory_xact_lock(hashtext('vision_stats:' || COALESCE(current_schema(), '')))"
)
_RETRIES = 5
# counts_json as a JSON object, or {} when a stored row holds something else (per connection)
_SAFE_COUNTS = """CREATE FUNCTION pg_temp.vision_counts(t TEXT) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE AS $f$
BEGIN
    IF jsonb_typeof(t::jsonb) = 'object' THEN RETURN t::jsonb; END IF;
    RETURN '{}'::jsonb;
EXCEPTION WHEN others THEN
    RETURN '{}'::jsonb;
END $f$"""


class PostgresStore(StatsStore):
    engine = "postgres"
    greatest = "GREATEST"
    json_classes = "jsonb_each_text(events.counts_json::jsonb) AS j"
    json_classes_safe = "jsonb_each_text(pg_temp.vision_counts(events.counts_json)) AS j"
    # a value that is not a plain integer of at most 18 digits (a poisoned row) reads as 0
    json_value = "CAST(CASE WHEN j.value ~ '^[0-9]{1,18}$' THEN j.value ELSE '0' END AS BIGINT)"
    wide_sum = "SUM"  # of BIGINT: NUMERIC, no overflow
    sat_add = POSTGRES_SAT_ADD
    percentiles = staticmethod(percentiles_in_sql)
    dwell_in_sql = True

    def __init__(
        self,
        dsn: str,
        *,
        pool_size: int = 8,
        connect_timeout_s: float = 10.0,
        pool_timeout_s: float = 30.0,
    ) -> None:
        self._dsn = dsn
        self.display_name = redact_dsn(dsn)
        self._connect_timeout_s = connect_timeout_s
        self._pool: ConnectionPool[psycopg.Connection[tuple[object, ...]]] = ConnectionPool(
            self._connect,
            lambda c: c.close(),
            healthy=lambda c: not (c.closed or c.broken),
            max_size=pool_size,
            timeout=pool_timeout_s,
        )

    def _q(self, sql: str) -> str:
        return sql.replace("%", "%%").replace("?", "%s")

    def _unavailable(self, exc: BaseException) -> StoreUnavailableError:
        return StoreUnavailableError(f"PostgreSQL {self.display_name}: {scrub(str(exc)).strip()}")

    def _connect(self) -> psycopg.Connection[tuple[object, ...]]:
        try:
            conn = psycopg.connect(
                self._dsn, autocommit=True, connect_timeout=max(1, round(self._connect_timeout_s))
            )
            conn.execute(_STAGE)
            conn.execute(_SAFE_COUNTS)
            for ddl in TEMP_TABLES:
                conn.execute(ddl + " ON COMMIT DELETE ROWS")
        except psycopg.Error as exc:
            raise self._unavailable(exc) from None
        return conn

    def _transact(self, fn: Callable[[Cursor], T]) -> T:
        return self._run(fn, write=True)

    def _read(self, fn: Callable[[Cursor], T]) -> T:
        return self._run(fn, write=False)

    def _run(self, fn: Callable[[Cursor], T], *, write: bool) -> T:
        """fn(cursor) in one transaction on a pooled connection.

        A write that meets a deadlock or serialization failure is retried (5 times, backing
        off). A connection error is retried ONCE on a fresh connection, after dropping every
        idle pooled one: the server may have terminated them all (a restart, an admin's
        pg_terminate_backend, an idle timeout), and only a second failure means the database
        is really unavailable (503). Safe for writes too: an insert whose COMMIT did not
        arrive is sent again, and known event_ids are skipped.
        """
        stale_retried = False
        attempt = 0
        while True:
            try:
                with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
                    return fn(cur)
            except (pg_errors.DeadlockDetected, pg_errors.SerializationFailure) as exc:
                attempt += 1
                if not write or attempt >= _RETRIES:
                    raise StoreError(f"PostgreSQL {self.display_name}: {exc}") from exc
                time.sleep(0.01 * 2**attempt)
            except psycopg.OperationalError as exc:
                if stale_retried:
                    raise self._unavailable(exc) from exc
                stale_retried = True
                self._pool.discard_idle()
            except psycopg.Error as exc:
                raise StoreError(f"PostgreSQL {self.display_name}: {scrub(str(exc))}") from exc

    def _insert_events(self, cur: Cursor, rows: list[EventRow]) -> tuple[set[str], NewRows]:
        with cur.copy(f"COPY stage_events ({_COLS}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        cur.execute(_MOVE_STAGED)
        new_ids = {r[0] for r in cur.fetchall()}
        if len(new_ids) < len(rows):  # keep only the new rows staged, for the rollups
            cur.execute("DELETE FROM stage_events WHERE NOT (event_id = ANY(%s))", (list(new_ids),))
        return new_ids, NewRows("stage_events AS events", "TRUE", ())

    @staticmethod
    def _unnest_sql(table: Table) -> str:
        """INSERT ... SELECT FROM unnest(one array per column): a whole batch in one
        statement and one round trip."""
        cols = ", ".join(table.names)
        arrays = ", ".join(f"%s::{pg_type}[]" for _, pg_type in table.columns)
        return (
            f"INSERT INTO {table.name} ({cols}) SELECT * FROM unnest({arrays}) AS u({cols})"
            " ORDER BY 1 ON CONFLICT DO NOTHING"
        )

    def _insert_new(self, cur: Cursor, table: Table, rows: list[tuple[Any, ...]]) -> set[str]:
        cur.execute(
            self._unnest_sql(table) + " RETURNING event_id",
            [list(c) for c in zip(*rows, strict=True)],
        )
        return {r[0] for r in cur.fetchall()}

    def _insert_all(self, cur: Cursor, table: Table, rows: list[tuple[Any, ...]]) -> None:
        cur.execute(self._unnest_sql(table), [list(c) for c in zip(*rows, strict=True)])

    def _lock_schema(self, cur: Cursor) -> None:
        cur.execute(_SCHEMA_LOCK)

    def close(self) -> None:
        self._pool.close()
