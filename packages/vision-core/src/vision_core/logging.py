"""StructuredLogger: JSONL lines for machines, short human lines on the console.

One JSON object per line with ts_utc, level, event, message, run_id, backend and any extra
fields. Writes are serialised by a lock (thread-safe); a message below the minimum level
returns before any formatting or I/O. Registered secrets are scrubbed from every line.
"""

from __future__ import annotations

import json
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from vision_core.secrets import scrub

LEVELS = {"DEBUG": 10, "INFO": 20, "WARN": 30, "WARNING": 30, "ERROR": 40}


class StructuredLogger:
    """Thread-safe JSONL logger (see the module docstring)."""

    def __init__(
        self,
        log_path: str | Path | None = None,
        level: str = "INFO",
        *,
        run_id: str = "",
        backend: str = "",
        console: bool | TextIO = False,
        console_level: str = "INFO",
    ) -> None:
        if level.upper() not in LEVELS:
            raise ValueError(f"log level must be one of {sorted(LEVELS)}, got {level!r}")
        self.min_level = LEVELS[level.upper()]
        self.console_level = LEVELS[console_level.upper()]
        self.run_id = run_id
        self.backend = backend
        self.log_path = Path(log_path) if log_path else None
        self._lock = threading.Lock()
        self._fh: TextIO | None = None
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.log_path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115
        self._console: TextIO | None = sys.stderr if console is True else (console or None)
        self._floor = min(
            self.min_level if self._fh else 100, self.console_level if self._console else 100
        )

    def bind(self, *, run_id: str | None = None, backend: str | None = None) -> None:
        """Set the run id / backend stamped on every later line."""
        if run_id is not None:
            self.run_id = run_id
        if backend is not None:
            self.backend = backend

    def is_enabled(self, level: str) -> bool:
        return LEVELS[level] >= self._floor

    def log(self, level: str, event: str, message: str, **extra: Any) -> None:
        lvl = LEVELS[level]
        if lvl < self._floor:
            return
        record: dict[str, Any] = {
            "ts_utc": datetime.now(UTC).isoformat(timespec="microseconds"),
            "level": "WARN" if level == "WARNING" else level,
            "event": event,
            "message": message,
            "run_id": self.run_id,
            "backend": self.backend,
        }
        for key, value in extra.items():
            if key not in record:
                record[key] = value
        with self._lock:
            if self._fh is not None and lvl >= self.min_level:
                line = json.dumps(record, default=str, ensure_ascii=False)
                self._fh.write(scrub(line) + "\n")
            if self._console is not None and lvl >= self.console_level:
                # short lines: no nested data, no multi-line text (tracebacks stay in the JSONL)
                tail = " ".join(
                    f"{k}={v}"
                    for k, v in extra.items()
                    if not isinstance(v, (dict, list)) and "\n" not in str(v)
                )
                human = f"{record['ts_utc'][11:19]} {record['level']:<5} {message}" + (
                    f"  [{tail}]" if tail else ""
                )
                try:
                    self._console.write(scrub(human) + "\n")
                    self._console.flush()
                except ValueError:  # console closed under us (interpreter shutdown)
                    pass

    def debug(self, event: str, message: str, **extra: Any) -> None:
        self.log("DEBUG", event, message, **extra)

    def info(self, event: str, message: str, **extra: Any) -> None:
        self.log("INFO", event, message, **extra)

    def warn(self, event: str, message: str, **extra: Any) -> None:
        self.log("WARN", event, message, **extra)

    warning = warn

    def error(self, event: str, message: str, **extra: Any) -> None:
        self.log("ERROR", event, message, **extra)

    def close(self) -> None:
        with self._lock:
            if self._fh is not None:
                self._fh.close()
                self._fh = None

    def __enter__(self) -> StructuredLogger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Read a JSONL log back (tests and tools)."""
    return [
        json.loads(line)
        for line in Path(path).read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
