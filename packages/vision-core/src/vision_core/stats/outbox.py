"""A durable outbox of events: a SQLite file between the producer and the sender.

The producer (an edge device, a server worker) `put`s the events of its frames; `put`
returns only after the transaction has COMMITTED, so an event that was acknowledged to the
caller survives a crash of the process. The sender (`vision_core.stats.sender`) `peek`s a
batch, POSTs it, and `ack`s the ids that the statistics service took. Nothing is removed
before it is acknowledged, so a stats outage loses nothing: the events wait on disk, up to
the cap.

Events of several kinds share one outbox and one order (`kind`: "frame" for a StatsEvent;
the tracking events add theirs): each row carries its kind, and the sender delivers each
kind where it belongs.

Storage:

- journal_mode=WAL: the producer's commits never wait for the sender's reads.
- synchronous=NORMAL (the default here): in WAL mode a commit is a write() to the WAL file,
  without an fsync; the event survives a crash of the PROCESS (the OS holds the write) and
  only an OS crash or power cut can lose the last commits. FULL adds one fsync per commit
  (milliseconds on the SD cards and eMMC of edge devices, paid on every frame batch); pass
  `synchronous="FULL"` where power cuts are common and the write rate is low.
- rows: `events(id INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT UNIQUE, kind TEXT,
  created_at REAL, payload BLOB)`. AUTOINCREMENT never reuses an id, so a late `ack` can
  never delete a newer row; event_id is unique, so putting an event twice stores it once (the
  statistics store deduplicates by event_id too). payload is the event's JSON: the sender
  concatenates payloads into a JSON array without decoding them.
- `dead_letters(...)`: events the service refused for good (a 4xx naming the event, or a
  5xx that follows one event around while its neighbours go through: see the sender). They
  leave the queue so that everything behind them is delivered, and wait here, with the
  status and reason, until an operator exports, retries or purges them (`vision-edge
  dead-letters`). At most `MAX_DEAD_LETTERS` are kept (oldest go first, counted).
- `meta(key, value)`: the dropped-event counter and the last send error, kept across restarts.

Cap: at most `max_events` rows. When full, `policy` decides, in the same transaction as the
insert: `drop_oldest` (default: the freshest data matters most to a live dashboard)
deletes the oldest rows, `drop_newest` refuses the new events. Either way the count is
added to `dropped` and logged (at most one line per `DROP_LOG_EVERY_SEC`).

A file that is not a readable SQLite database when opened is renamed aside
(`<name>.corrupt-<stamp>`, logged) and a new outbox is started, so a device that lost power
mid-write keeps running. One process writes a given file (the pending count is cached).
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

import msgspec

from vision_core.errors import VisionError
from vision_core.logging import StructuredLogger
from vision_core.types import CrossingEvent, IntervalSummary, StatsEvent, ZoneEvent

if TYPE_CHECKING:
    from vision_core.config.schema import StatsSink

__all__ = [
    "DROP_LOG_EVERY_SEC",
    "FRAME_KIND",
    "MAX_DEAD_LETTERS",
    "DeadLetter",
    "Outbox",
    "OutboxError",
    "OutboxItem",
    "OutboxPolicy",
    "payloads_as_array",
]

OutboxPolicy = Literal["drop_oldest", "drop_newest"]
Synchronous = Literal["NORMAL", "FULL"]
DROP_LOG_EVERY_SEC = 10.0
SCHEMA_VERSION = 2
MAX_DEAD_LETTERS = 10_000
FRAME_KIND = "frame"  # a StatsEvent
_ID_CHUNK = 500  # SQLite host parameters per statement, well under every build's limit

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL DEFAULT 'frame',
    created_at REAL NOT NULL,
    payload BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL DEFAULT 'frame',
    created_at REAL NOT NULL,
    failed_at REAL NOT NULL,
    status INTEGER NOT NULL,
    reason TEXT NOT NULL,
    payload BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
# version 1 files: events had no kind column (every event was a StatsEvent)
_MIGRATE_1_TO_2 = "ALTER TABLE events ADD COLUMN kind TEXT NOT NULL DEFAULT 'frame'"

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(StatsEvent)


class OutboxError(VisionError):
    """The outbox file cannot be opened or written (disk full, permissions, locked)."""


class Event(Protocol):
    """What the outbox stores: any event struct with a unique id."""

    event_id: str


# the kind of each event type the outbox carries (a tracking event's kind is its wire tag)
_KINDS: dict[type, str] = {
    StatsEvent: FRAME_KIND,
    CrossingEvent: "crossing",
    ZoneEvent: "zone",
    IntervalSummary: "summary",
}


def register_kind(cls: type, kind: str) -> None:
    """Declare the outbox kind of an event type (its row's `kind`, its delivery route)."""
    if not kind.replace("_", "").isalnum():
        raise ValueError(f"an event kind is a plain word, got {kind!r}")
    _KINDS[cls] = kind


def kind_of(event: object) -> str:
    try:
        return _KINDS[type(event)]
    except KeyError:
        raise TypeError(f"{type(event).__name__} is not an outbox event type") from None


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """A pending event: its row id (what `ack` takes), its kind and its JSON."""

    id: int
    event_id: str
    created_at: float  # unix time of the put
    payload: bytes  # the event as JSON
    kind: str = FRAME_KIND

    def event(self) -> StatsEvent:
        """The payload as a StatsEvent (frame events only)."""
        return _decoder.decode(self.payload)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """An event the service refused for good, with why."""

    id: int
    event_id: str
    kind: str
    created_at: float  # unix time of the put
    failed_at: float  # unix time it was set aside
    status: int  # the HTTP status of the last refusal (0: no HTTP answer)
    reason: str
    payload: bytes


class Outbox:
    """The SQLite outbox (see the module docstring). Thread-safe."""

    def __init__(
        self,
        path: str | Path,
        *,
        max_events: int = 100_000,
        policy: OutboxPolicy = "drop_oldest",
        synchronous: Synchronous = "NORMAL",
        logger: StructuredLogger | None = None,
        busy_timeout_ms: int = 2000,
    ) -> None:
        if max_events < 1:
            raise ValueError(f"max_events must be >= 1, got {max_events}")
        if policy not in ("drop_oldest", "drop_newest"):
            raise ValueError(f"policy must be 'drop_oldest' or 'drop_newest', got {policy!r}")
        if synchronous not in ("NORMAL", "FULL"):
            raise ValueError(f"synchronous must be 'NORMAL' or 'FULL', got {synchronous!r}")
        self.path = Path(path)
        self.max_events = max_events
        self.policy: OutboxPolicy = policy
        self.synchronous: Synchronous = synchronous
        self.log = logger or StructuredLogger(None)
        self._busy_timeout_ms = busy_timeout_ms
        self._lock = threading.Lock()
        self._dropped_unlogged = 0
        self._last_drop_log = 0.0
        self._closed = False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._conn = self._open()
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError) and not _is_corruption(exc):
                raise OutboxError(f"cannot open the outbox {self.path}: {exc}") from exc
            aside = self._move_aside(exc)
            try:
                self._conn = self._open()
            except sqlite3.Error as again:
                raise OutboxError(f"cannot open the outbox {self.path}: {again}") from again
            self.log.error(
                "outbox.corrupt",
                f"outbox {self.path} was not a readable database ({exc}); moved to {aside.name} "
                "and started a new one",
                path=str(self.path),
                moved_to=str(aside),
            )
        self._count = int(self._conn.execute("SELECT COUNT(*) FROM events").fetchone()[0])
        self._dead = int(self._conn.execute("SELECT COUNT(*) FROM dead_letters").fetchone()[0])
        self._dropped = int(self._meta("dropped_total") or 0)
        self._last_error = self._meta("last_error")

    @classmethod
    def from_config(
        cls, path: str | Path, sink: StatsSink, *, logger: StructuredLogger | None = None
    ) -> Outbox:
        """The outbox of `deploy.stats` (cap and policy) at `path`."""
        return cls(
            path, max_events=sink.outbox_max_events, policy=sink.outbox_policy, logger=logger
        )

    # -- opening ---------------------------------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path,
            timeout=self._busy_timeout_ms / 1000,
            isolation_level=None,  # autocommit; transactions are explicit (BEGIN IMMEDIATE)
            check_same_thread=False,  # shared by the producer and the sender, under _lock
        )
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)}")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise OutboxError(f"{self.path}: SQLite refused WAL mode (got {mode!r})")
            conn.execute(f"PRAGMA synchronous = {self.synchronous}")
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            if version == 1:
                conn.execute(_MIGRATE_1_TO_2)
            conn.executescript(_SCHEMA)
            if version < SCHEMA_VERSION:
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            elif version > SCHEMA_VERSION:
                raise OutboxError(
                    f"{self.path}: outbox schema version {version} is newer than this "
                    f"vision-core understands ({SCHEMA_VERSION}); upgrade vision-core"
                )
            check = conn.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise sqlite3.DatabaseError(f"quick_check: {check}")
        except BaseException:
            conn.close()
            raise
        return conn

    def _move_aside(self, exc: BaseException) -> Path:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        for suffix in ("", "-wal", "-shm"):
            src = Path(f"{self.path}{suffix}")
            if src.exists():
                src.replace(Path(f"{aside}{suffix}"))
        return aside

    def _meta(self, key: str) -> str | None:
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def _set_meta(self, key: str, value: str | None) -> None:
        if value is None:
            self._conn.execute("DELETE FROM meta WHERE key = ?", (key,))
        else:
            self._conn.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    # -- producer ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def _transaction(self, verb: str) -> Iterator[None]:
        """BEGIN IMMEDIATE ... COMMIT, rolled back on any error; a SQLite error becomes an
        OutboxError naming the file (`verb`: what could not be done to it). Under _lock."""
        try:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield
                self._conn.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    self._conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise OutboxError(f"cannot {verb} the outbox {self.path}: {exc}") from exc

    def put(self, events: Event | Iterable[Event]) -> int:
        """Store events in one transaction; returns how many new rows were stored.

        Returns only after COMMIT. Events already in the outbox (same event_id) are not
        stored again. When the cap is reached, `policy` drops the oldest rows or these new
        events (counted in `dropped`, logged). Raises OutboxError when SQLite cannot write.
        """
        batch: list[Event] = (
            list(events) if isinstance(events, Iterable) else [events]  # a struct or a batch
        )
        if not batch:
            return 0
        now = time.time()
        kinds = [kind_of(ev) for ev in batch]  # TypeError for a type the outbox does not carry
        rows = [
            (ev.event_id, kind, now, _encoder.encode(ev))
            for ev, kind in zip(batch, kinds, strict=True)
        ]
        with self._lock:
            self._check_open()
            dropped = 0
            with self._transaction("write to"):
                if self.policy == "drop_newest":
                    room = max(0, self.max_events - self._count)
                    dropped = max(0, len(rows) - room)
                    rows = rows[:room]
                before = self._conn.total_changes
                self._conn.executemany(
                    "INSERT OR IGNORE INTO events (event_id, kind, created_at, payload) "
                    "VALUES (?, ?, ?, ?)",
                    rows,
                )
                stored = self._conn.total_changes - before
                count = self._count + stored
                if count > self.max_events:  # drop_oldest (drop_newest never overfills)
                    excess = count - self.max_events
                    self._conn.execute(
                        "DELETE FROM events WHERE id IN "
                        "(SELECT id FROM events ORDER BY id LIMIT ?)",
                        (excess,),
                    )
                    dropped += excess
                    count -= excess
                if dropped:
                    self._set_meta("dropped_total", str(self._dropped + dropped))
            self._count = count
            if dropped:
                self._dropped += dropped
                self._note_drop(dropped)
            return stored

    def _note_drop(self, n: int) -> None:
        """Log drops, at most once per DROP_LOG_EVERY_SEC (the counter has every one)."""
        self._dropped_unlogged += n
        now = time.monotonic()
        if now - self._last_drop_log < DROP_LOG_EVERY_SEC and self._last_drop_log:
            return
        self.log.warn(
            "outbox.dropped",
            f"outbox full ({self.max_events} events): {self.policy} dropped "
            f"{self._dropped_unlogged} event(s) ({self._dropped} in all); is the stats "
            "endpoint reachable?",
            dropped=self._dropped_unlogged,
            dropped_total=self._dropped,
            policy=self.policy,
            path=str(self.path),
        )
        self._dropped_unlogged = 0
        self._last_drop_log = now

    # -- sender --------------------------------------------------------------------------------

    def peek(self, n: int, offset: int = 0, *, after: int = 0) -> list[OutboxItem]:
        """The oldest `n` pending events after the first `offset`, oldest first (nothing is
        removed); `after`: only rows whose id is greater (what a sender has not sent yet)."""
        if n < 1:
            return []
        with self._lock:
            self._check_open()
            try:
                rows = self._conn.execute(
                    "SELECT id, event_id, created_at, payload, kind FROM events WHERE id > ? "
                    "ORDER BY id LIMIT ? OFFSET ?",
                    (max(0, after), n, max(0, offset)),
                ).fetchall()
            except sqlite3.Error as exc:
                raise OutboxError(f"cannot read the outbox {self.path}: {exc}") from exc
        return [OutboxItem(int(r[0]), str(r[1]), float(r[2]), bytes(r[3]), str(r[4])) for r in rows]

    def ack(self, ids: Iterable[int]) -> int:
        """Remove delivered events by row id; returns how many rows went. Unknown ids are fine."""
        id_list = list(dict.fromkeys(int(i) for i in ids))
        if not id_list:
            return 0
        with self._lock:
            self._check_open()
            with self._transaction("update"):
                before = self._conn.total_changes
                for start in range(0, len(id_list), _ID_CHUNK):
                    chunk = id_list[start : start + _ID_CHUNK]
                    marks = ",".join("?" * len(chunk))
                    self._conn.execute(f"DELETE FROM events WHERE id IN ({marks})", chunk)
                removed = self._conn.total_changes - before
            self._count = max(0, self._count - removed)
            return removed

    # -- dead letters --------------------------------------------------------------------------

    def bury(self, item: OutboxItem, status: int, reason: str) -> bool:
        """Move a pending event to the dead letters (the service refused it for good).

        Returns False when the event was no longer pending. Beyond MAX_DEAD_LETTERS the
        oldest dead letters go (counted in `dropped`, as the cap of the queue is).
        """
        with self._lock:
            self._check_open()
            with self._transaction("update"):
                row = self._conn.execute(
                    "SELECT event_id, kind, created_at, payload FROM events WHERE id = ?",
                    (item.id,),
                ).fetchone()
                if row is None:
                    return False
                self._conn.execute(
                    "INSERT OR REPLACE INTO dead_letters "
                    "(event_id, kind, created_at, failed_at, status, reason, payload) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (row[0], row[1], row[2], time.time(), int(status), reason[:2000], row[3]),
                )
                self._conn.execute("DELETE FROM events WHERE id = ?", (item.id,))
                dead = int(self._conn.execute("SELECT COUNT(*) FROM dead_letters").fetchone()[0])
                over = max(0, dead - MAX_DEAD_LETTERS)
                if over:
                    self._conn.execute(
                        "DELETE FROM dead_letters WHERE id IN "
                        "(SELECT id FROM dead_letters ORDER BY id LIMIT ?)",
                        (over,),
                    )
                    self._set_meta("dropped_total", str(self._dropped + over))
            self._count = max(0, self._count - 1)
            self._dead = dead - over
            if over:
                self._dropped += over
                self._note_drop(over)
            return True

    def dead_letters(self, limit: int | None = None) -> list[DeadLetter]:
        """The dead letters, oldest first."""
        with self._lock:
            self._check_open()
            rows = self._conn.execute(
                "SELECT id, event_id, kind, created_at, failed_at, status, reason, payload "
                "FROM dead_letters ORDER BY id LIMIT ?",
                (-1 if limit is None else int(limit),),
            ).fetchall()
        return [
            DeadLetter(
                int(r[0]),
                str(r[1]),
                str(r[2]),
                float(r[3]),
                float(r[4]),
                int(r[5]),
                str(r[6]),
                bytes(r[7]),
            )
            for r in rows
        ]

    def dead_count(self) -> int:
        """How many dead letters there are."""
        with self._lock:
            return self._dead

    def requeue_dead(self, ids: Iterable[int] | None = None) -> int:
        """Put dead letters (all, or these row ids) back in the queue, behind what is pending;
        returns how many went back."""
        return self._take_dead(ids, requeue=True)

    def purge_dead(self, ids: Iterable[int] | None = None) -> int:
        """Delete dead letters (all, or these row ids) for good; returns how many went."""
        return self._take_dead(ids, requeue=False)

    def _take_dead(self, ids: Iterable[int] | None, *, requeue: bool) -> int:
        where, params = "", ()  # type: tuple[str, tuple[int, ...]]
        if ids is not None:
            id_list = tuple(dict.fromkeys(int(i) for i in ids))
            if not id_list:
                return 0
            where, params = f" WHERE id IN ({','.join('?' * len(id_list))})", id_list
        with self._lock:
            self._check_open()
            with self._transaction("update"):
                before = self._conn.total_changes
                if requeue:
                    self._conn.execute(
                        "INSERT OR IGNORE INTO events (event_id, kind, created_at, payload) "
                        f"SELECT event_id, kind, created_at, payload FROM dead_letters{where} "
                        "ORDER BY id",
                        params,
                    )
                moved = self._conn.total_changes - before
                self._conn.execute(f"DELETE FROM dead_letters{where}", params)
                removed = self._conn.total_changes - before - moved
                count = int(self._conn.execute("SELECT COUNT(*) FROM events").fetchone()[0])
            self._count = count
            self._dead = max(0, self._dead - removed)
            return moved if requeue else removed

    # -- observation -------------------------------------------------------------------------

    def pending(self) -> int:
        """Events waiting to be sent."""
        with self._lock:
            return self._count

    @property
    def dropped(self) -> int:
        """Events dropped by the cap since the file was created."""
        with self._lock:
            return self._dropped

    def oldest_age(self) -> float:
        """Seconds since the oldest pending event was put (0.0 when empty)."""
        with self._lock:
            self._check_open()
            row = self._conn.execute("SELECT created_at FROM events ORDER BY id LIMIT 1").fetchone()
        return 0.0 if row is None else max(0.0, time.time() - float(row[0]))

    @property
    def last_error(self) -> str | None:
        """The last send error the sender recorded (None after a successful send)."""
        with self._lock:
            return self._last_error

    def set_last_error(self, message: str | None) -> None:
        """Record (or clear, with None) the last send error; persisted across restarts."""
        with self._lock:
            if message == self._last_error or self._closed:
                return
            self._last_error = message
            with contextlib.suppress(sqlite3.Error):  # observability must never fail a send
                self._set_meta("last_error", message)

    def integrity_check(self) -> list[str]:
        """SQLite's `PRAGMA integrity_check`: [] when the file is sound, else the problems."""
        with self._lock:
            self._check_open()
            rows = [str(r[0]) for r in self._conn.execute("PRAGMA integrity_check").fetchall()]
        return [] if rows == ["ok"] else rows

    # -- lifecycle --------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise OutboxError(f"the outbox {self.path} is closed")

    def close(self) -> None:
        """Checkpoint the WAL into the main file and close (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._conn.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Outbox({str(self.path)!r}, pending={self._count}, policy={self.policy})"


def _is_corruption(exc: sqlite3.Error) -> bool:
    text = str(exc).lower()
    return any(s in text for s in ("not a database", "malformed", "corrupt", "quick_check"))


def payloads_as_array(items: Sequence[OutboxItem]) -> bytes:
    """The items' events as one JSON array (no decoding, no re-encoding)."""
    return b"[" + b",".join(it.payload for it in items) + b"]"
