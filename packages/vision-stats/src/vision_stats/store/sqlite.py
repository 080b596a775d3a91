"""SQLite engine: one file, WAL, a busy timeout, batched transactions.

Concurrency: readers never block writers (WAL). Every write transaction starts with
BEGIN IMMEDIATE, which takes the write lock up front and waits (busy_timeout) for it,
so a writer never fails half-way with "database is locked" on a lock upgrade; inside
one process, writers also queue on a lock instead of spinning in SQLite's busy handler.

Durability: synchronous=FULL (the default) syncs the WAL at every commit, so an
acknowledged batch survives a power cut too: a device deletes events from its outbox
once they are acknowledged. NORMAL keeps them through a crash of the process (kill -9)
and skips the fsync; batching is what makes either fast (one commit per batch).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, TypeVar

from vision_stats.errors import StoreError, StoreNotFoundError, StoreUnavailableError
from vision_stats.store.base import EVENT_COLUMNS, EventRow
from vision_stats.store.pool import ConnectionPool
from vision_stats.store.rollups import TEMP_TABLES, NewRows
from vision_stats.store.sql import Cursor, StatsStore
from vision_stats.store.track_write import Table

T = TypeVar("T")
_WAL_CHECKPOINT_PAGES = 10_000
_INSERT_EVENT = (
    f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(EVENT_COLUMNS))}) ON CONFLICT (event_id) DO NOTHING"
)


def _error(path: Path, exc: sqlite3.Error) -> StoreError:
    text = str(exc)
    if "locked" in text or "busy" in text:
        return StoreUnavailableError(f"SQLite {path}: {text} (another writer held the lock)")
    return StoreError(f"SQLite {path}: {text}")


class SqliteStore(StatsStore):
    engine = "sqlite"

    def __init__(
        self,
        path: str | Path,
        *,
        create: bool = True,
        busy_timeout_s: float = 30.0,
        synchronous: Literal["NORMAL", "FULL"] = "FULL",
        pool_size: int = 8,
    ) -> None:
        self.path = Path(path)
        self.display_name = str(self.path)
        if str(path) in {"", ":memory:"}:
            raise StoreError("SQLite store: give a file path (an in-memory database is not shared)")
        if not self.path.exists():
            if not create:
                raise StoreNotFoundError(
                    f"no statistics database at {self.path} (start `vision-stats serve` "
                    "or pass --db PATH|DSN)"
                )
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._busy_timeout_s = busy_timeout_s
        self._synchronous = synchronous
        self._write_lock = threading.Lock()
        self._pool: ConnectionPool[sqlite3.Connection] = ConnectionPool(
            self._connect, lambda c: c.close(), max_size=pool_size, timeout=busy_timeout_s
        )

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                self.path,
                timeout=self._busy_timeout_s,
                isolation_level=None,  # we issue BEGIN/COMMIT ourselves
                check_same_thread=False,  # the pool hands it to one thread at a time
            )
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                conn.close()
                raise StoreError(f"SQLite {self.path}: cannot switch to WAL (got {mode!r})")
            conn.execute(f"PRAGMA synchronous={self._synchronous}")
            conn.execute("PRAGMA cache_size=-65536")  # 64 MiB of page cache
            conn.execute("PRAGMA temp_store=MEMORY")
            # Checkpoint every ~40 MB of WAL rather than 4 MB: the event_id index takes
            # random keys, so consecutive batches dirty the same pages again and a
            # longer WAL writes each of them back once (about 1.5x the batched rate on a
            # large database); the file is cut back to 64 MB after a checkpoint.
            conn.execute(f"PRAGMA wal_autocheckpoint={_WAL_CHECKPOINT_PAGES}")
            conn.execute(f"PRAGMA journal_size_limit={64 * 1024 * 1024}")
            for ddl in TEMP_TABLES:
                conn.execute(ddl)
        except sqlite3.Error as exc:
            raise _error(self.path, exc) from exc
        return conn

    def _transact(self, fn: Callable[[Cursor], T]) -> T:
        with self._write_lock, self._pool.connection() as conn:
            cur = conn.cursor()
            try:
                cur.execute("BEGIN IMMEDIATE")
                result = fn(cur)
                cur.execute("COMMIT")
                return result
            except BaseException as exc:
                if conn.in_transaction:
                    conn.rollback()
                if isinstance(exc, sqlite3.Error):
                    raise _error(self.path, exc) from exc
                raise
            finally:
                cur.close()

    def _read(self, fn: Callable[[Cursor], T]) -> T:
        with self._pool.connection() as conn:
            cur = conn.cursor()
            try:
                cur.execute("BEGIN")  # one snapshot for every statement of fn
                return fn(cur)
            except sqlite3.Error as exc:
                raise _error(self.path, exc) from exc
            finally:
                if conn.in_transaction:
                    conn.rollback()
                cur.close()

    def _insert_events(self, cur: Cursor, rows: list[EventRow]) -> tuple[set[str], NewRows]:
        # BEGIN IMMEDIATE holds the write lock: every row with a rowid above the mark
        # was inserted by this transaction, and a known event_id is skipped.
        cur.execute("SELECT COALESCE(MAX(rowid), 0) FROM events")
        mark = int(cur.fetchone()[0])
        cur.executemany(_INSERT_EVENT, rows)
        cur.execute("SELECT event_id FROM events WHERE rowid > ?", (mark,))
        new_ids = {r[0] for r in cur.fetchall()}
        return new_ids, NewRows("events NOT INDEXED", "events.rowid > ?", (mark,))

    @staticmethod
    def _insert_sql(table: Table) -> str:
        cols = table.names
        return (
            f"INSERT INTO {table.name} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
            " ON CONFLICT DO NOTHING"
        )

    def _insert_new(self, cur: Cursor, table: Table, rows: list[tuple[Any, ...]]) -> set[str]:
        # as _insert_events: the rows above the rowid mark are this transaction's
        cur.execute(f"SELECT COALESCE(MAX(rowid), 0) FROM {table.name}")
        mark = int(cur.fetchone()[0])
        cur.executemany(self._insert_sql(table), rows)
        cur.execute(f"SELECT event_id FROM {table.name} WHERE rowid > ?", (mark,))
        return {r[0] for r in cur.fetchall()}

    def _insert_all(self, cur: Cursor, table: Table, rows: list[tuple[Any, ...]]) -> None:
        cur.executemany(self._insert_sql(table), rows)

    def integrity_check(self) -> str:
        """`ok`, or SQLite's list of problems."""
        rows = self._fetch("PRAGMA integrity_check")
        return "\n".join(str(r[0]) for r in rows)

    def close(self) -> None:
        self._pool.close()
