"""The statistics store: `open_store(db)` picks the engine from the string.

A `postgresql://` or `postgres://` URL, or a libpq `key=value` DSN, opens PostgreSQL
(psycopg is imported only then); anything else is a SQLite file path.
"""

from __future__ import annotations

import re

from vision_stats.store.migrations import LATEST_VERSION
from vision_stats.store.sql import StatsStore

_KV_DSN = re.compile(r"^\s*(host|hostaddr|dbname|user|port|service)\s*=", re.IGNORECASE)

__all__ = ["LATEST_VERSION", "StatsStore", "is_postgres_dsn", "open_store"]


def is_postgres_dsn(db: str) -> bool:
    text = db.strip()
    return text.startswith(("postgresql://", "postgres://")) or bool(_KV_DSN.match(text))


def open_store(
    db: str, *, create: bool = True, migrate: bool = True, pool_size: int = 8
) -> StatsStore:
    """Open (and by default migrate) the store at `db`: a SQLite path or a PostgreSQL DSN.

    create=False: a SQLite file that does not exist is an error (read-only commands).
    """
    store: StatsStore
    if is_postgres_dsn(db):
        from vision_stats.store.postgres import PostgresStore

        store = PostgresStore(db, pool_size=pool_size)
    else:
        from vision_stats.store.sqlite import SqliteStore

        store = SqliteStore(db, create=create, pool_size=pool_size)
    if migrate:
        try:
            store.init()
        except BaseException:
            store.close()
            raise
    return store
