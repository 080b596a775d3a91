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
from typing import TypeVar

import psycopg
from psycopg import errors as pg_errors

from vision_core.secrets import redact_dsn, scrub
from vision_stats.errors import StoreError, StoreUnavailableError
from vision_stats.store.base import EVENT_COLUMNS, EventRow
from vision_stats.store.pool import ConnectionPool
from vision_stats.store.rollups import TEMP_TABLES, NewRows
from vision_stats.store.series import percentiles_in_sql
from vision_stats.store.sql import Cursor, SqlStore

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


class PostgresStore(SqlStore):
    engine = "postgres"
    greatest = "GREATEST"
    json_classes = "jsonb_each_text(events.counts_json::jsonb) AS j"
    json_value = "CAST(j.value AS BIGINT)"
    percentiles = staticmethod(percentiles_in_sql)

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
            for ddl in TEMP_TABLES:
                conn.execute(ddl + " ON COMMIT DELETE ROWS")
        except psycopg.Error as exc:
            raise self._unavailable(exc) from None
        return conn

    def _transact(self, fn: Callable[[Cursor], T]) -> T:
        for attempt in range(_RETRIES):
            try:
                with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
                    return fn(cur)
            except (pg_errors.DeadlockDetected, pg_errors.SerializationFailure) as exc:
                if attempt == _RETRIES - 1:
                    raise StoreError(f"PostgreSQL {self.display_name}: {exc}") from exc
                time.sleep(0.01 * 2**attempt)
            except psycopg.OperationalError as exc:
                raise self._unavailable(exc) from exc
            except psycopg.Error as exc:
                raise StoreError(f"PostgreSQL {self.display_name}: {scrub(str(exc))}") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def _read(self, fn: Callable[[Cursor], T]) -> T:
        try:
            with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
                return fn(cur)
        except psycopg.OperationalError as exc:
            raise self._unavailable(exc) from exc
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

    def _lock_schema(self, cur: Cursor) -> None:
        cur.execute(_SCHEMA_LOCK)

    def close(self) -> None:
        self._pool.close()
