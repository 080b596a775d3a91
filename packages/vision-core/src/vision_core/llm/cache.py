"""A durable response cache: SQLite, keyed by (image content hash, model, prompt).

Only answers that parsed are stored, so a rerun pays again only for images that failed.
Safe to share between threads (one connection behind a lock, WAL journal).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    image_sha256 TEXT NOT NULL,
    model TEXT NOT NULL,
    prompt_sha256 TEXT NOT NULL,
    answer TEXT NOT NULL,
    usage TEXT NOT NULL,
    created REAL NOT NULL
)
"""


def cache_key(image_sha256: str, model: str, prompt: str) -> str:
    """sha256 over the image hash, the model and the prompt (each length-prefixed)."""
    h = hashlib.sha256()
    for part in (image_sha256, model, prompt):
        raw = part.encode("utf-8")
        h.update(len(raw).to_bytes(8, "big"))
        h.update(raw)
    return h.hexdigest()


class ResponseCache:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, timeout=30)
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(SCHEMA)
            self._db.commit()

    def get(self, key: str) -> tuple[str, dict[str, Any]] | None:
        with self._lock:
            row = self._db.execute(
                "SELECT answer, usage FROM responses WHERE key = ?", (key,)
            ).fetchone()
        if row is None:
            return None
        return str(row[0]), json.loads(row[1])

    def put(
        self,
        key: str,
        *,
        image_sha256: str,
        model: str,
        prompt: str,
        answer: str,
        usage: dict[str, Any],
    ) -> None:
        prompt_sha = hashlib.sha256(prompt.encode("utf-8")).hexdigest()
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?, ?, ?)",
                (key, image_sha256, model, prompt_sha, answer, json.dumps(usage), time.time()),
            )
            self._db.commit()

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()
