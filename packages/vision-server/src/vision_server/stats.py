"""The server's stats: one StatsEvent per frame -> its worker's outbox -> vision-stats.

The server OWNS the stats of stream mode: an edge device streaming frames here records
none of its own (see the README), so every frame is counted once, by the process that ran
the model on it. Events are built and committed to the outbox in the inference thread,
right after their batch (one transaction per batch), before the clients get their answers;
the sender thread POSTs them to `deploy.stats.endpoint`. Nothing here can fail or slow a
frame request beyond that local commit: an outbox error is counted and logged, and the
frame is answered anyway.

One outbox per worker process, in slots: a worker takes the lowest free
`<workdir>/outbox/server-<k>.db`, holding `server-<k>.lock` (flock) while it runs. After a
restart the workers find their slots again, with whatever was not yet delivered. A worker
also adopts the outbox of any slot nobody holds (the server came back with fewer workers):
it moves those events into its own outbox and deletes the file. Event ids are unique, so
a repeat after a crash mid-move is deduplicated by the outbox and by vision-stats.

A frame that carries `ts_utc` gets a deterministic event id (from source_id, frame_index
and ts_utc): an edge that re-sends a frame after a timeout is counted once.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from vision_core.logging import StructuredLogger
from vision_core.outbox import Outbox, OutboxError
from vision_core.stats_sender import StatsSender
from vision_core.types import Detection, StatsEvent, make_stats_event, utc_now
from vision_server.settings import ServerSettings

__all__ = ["FrameMeta", "ServerStats", "event_id_for"]

MODE = "stream"
MAX_SLOTS = 1024
_EVENT_NS = uuid.UUID("5f0c7f0e-4d55-4bb4-9f43-7a1c2f6d3e01")
_ERROR_LOG_EVERY_SEC = 30.0


@dataclass(frozen=True, slots=True)
class FrameMeta:
    """What the stats need from a request."""

    source_id: str
    frame_index: int
    ts_utc: datetime | None
    received: float  # time.perf_counter() when the request arrived


def event_id_for(source_id: str, frame_index: int, ts_utc: datetime | None) -> str:
    """Deterministic for a frame with a timestamp (a re-sent frame counts once), else random."""
    if ts_utc is None:
        return uuid.uuid4().hex
    return uuid.uuid5(_EVENT_NS, f"{source_id}\x00{frame_index}\x00{ts_utc.isoformat()}").hex


class _Slot:
    """An flock-held `server-<k>` slot in the outbox directory."""

    def __init__(self, directory: Path, index: int, fh: IO[bytes]) -> None:
        self.directory, self.index, self._fh = directory, index, fh

    @property
    def db(self) -> Path:
        return self.directory / f"server-{self.index}.db"

    @classmethod
    def try_lock(cls, directory: Path, index: int) -> _Slot | None:
        fh = open(directory / f"server-{index}.lock", "ab")  # noqa: SIM115 - held while running
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.close()
            return None
        return cls(directory, index, fh)

    @classmethod
    def claim(cls, directory: Path) -> _Slot:
        directory.mkdir(parents=True, exist_ok=True)
        for index in range(MAX_SLOTS):
            slot = cls.try_lock(directory, index)
            if slot is not None:
                return slot
        raise OutboxError(f"all {MAX_SLOTS} outbox slots in {directory} are held")

    def release(self) -> None:
        with contextlib.suppress(OSError):
            fcntl.flock(self._fh.fileno(), fcntl.LOCK_UN)
        self._fh.close()


class ServerStats:
    """The outbox (and sender, when an endpoint is set) of one server worker."""

    def __init__(self, settings: ServerSettings, log: StructuredLogger, model_name: str) -> None:
        self.settings = settings
        self.log = log
        self.model_name = model_name
        self.slot = _Slot.claim(settings.outbox_dir)
        sink = settings.stats
        try:
            self.outbox = Outbox.from_config(self.slot.db, sink, logger=log)
        except BaseException:
            self.slot.release()
            raise
        self.adopted = self._adopt_orphans()
        self.sender: StatsSender | None = None
        if sink.endpoint:
            self.sender = StatsSender(
                self.outbox,
                sink.endpoint,
                api_key=settings.stats_api_key,
                batch_size=sink.batch_size,
                max_backoff_sec=sink.max_backoff_sec,
                logger=log,
                name=f"stats-sender-{self.slot.index}",
            ).start()
        self.errors_total = 0
        self._last_error_log = 0.0
        log.info(
            "server.stats",
            f"stats: outbox {self.slot.db} ({self.outbox.pending()} pending"
            + (f", {self.adopted} adopted" if self.adopted else "")
            + f") -> {sink.endpoint or 'kept locally (deploy.stats.endpoint is empty)'}",
            outbox=str(self.slot.db),
            endpoint=sink.endpoint,
        )

    def _adopt_orphans(self) -> int:
        moved = 0
        for db in sorted(self.settings.outbox_dir.glob("server-*.db")):
            try:
                index = int(db.stem.split("-", 1)[1])
            except ValueError:
                continue
            if index == self.slot.index:
                continue
            other = _Slot.try_lock(db.parent, index)
            if other is None:  # a live worker holds it
                continue
            try:
                moved += self._move_from(db)
            except (OutboxError, OSError) as exc:
                self.log.warn("server.stats_adopt", f"could not adopt {db}: {exc}", path=str(db))
            finally:
                other.release()
        return moved

    def _move_from(self, db: Path) -> int:
        moved = 0
        with Outbox(db, max_events=self.settings.stats.outbox_max_events) as orphan:
            while items := orphan.peek(1000):
                self.outbox.put([it.event() for it in items])
                orphan.ack(it.id for it in items)
                moved += len(items)
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(f"{db}{suffix}")
        if moved:
            self.log.info(
                "server.stats_adopt",
                f"adopted {moved} undelivered event(s) from {db.name} (no worker holds it)",
                path=str(db),
                events=moved,
            )
        return moved

    def events_for(
        self, metas: Sequence[FrameMeta], detections: Sequence[list[Detection]], done_at: float
    ) -> list[StatsEvent]:
        now = utc_now()
        return [
            make_stats_event(
                source_id=m.source_id,
                mode=MODE,
                frame_index=m.frame_index,
                latency_ms=(done_at - m.received) * 1000.0,
                detections=dets,
                model=self.model_name,
                event_id=event_id_for(m.source_id, m.frame_index, m.ts_utc),
                ts_utc=m.ts_utc or now,
            )
            for m, dets in zip(metas, detections, strict=True)
        ]

    def record(
        self, metas: Sequence[FrameMeta], detections: Sequence[list[Detection]], done_at: float
    ) -> None:
        """Commit one batch's events (inference thread). Never raises."""
        try:
            self.outbox.put(self.events_for(metas, detections, done_at))
        except Exception as exc:  # a full disk must not fail frames
            self.errors_total += 1
            now = time.monotonic()
            if now - self._last_error_log >= _ERROR_LOG_EVERY_SEC:
                self._last_error_log = now
                self.log.error(
                    "server.stats_error",
                    f"stats events not recorded ({type(exc).__name__}: {exc}); frames are "
                    "still served",
                    errors_total=self.errors_total,
                )
            return
        if self.sender is not None:
            self.sender.notify()

    def snapshot(self) -> dict[str, Any]:
        snap: dict[str, Any] = {
            "outbox": str(self.slot.db),
            "endpoint": self.settings.stats.endpoint,
            "pending": self.outbox.pending(),
            "dropped_total": self.outbox.dropped,
            "record_errors_total": self.errors_total,
            "last_error": self.outbox.last_error,
        }
        if self.sender is not None:
            snap.update(self.sender.snapshot())
        return snap

    def close(self) -> bool:
        """Flush up to deploy.remote.stats_flush_sec, close; True when nothing is pending."""
        drained = False
        try:
            if self.sender is not None:
                drained = self.sender.close(self.settings.remote.stats_flush_sec)
            pending = self.outbox.pending()
            drained = pending == 0
            if pending:
                self.log.info(
                    "server.stats_kept",
                    f"{pending} stats event(s) not yet delivered stay in {self.slot.db} for "
                    "the next start",
                    pending=pending,
                )
        finally:
            self.outbox.close()
            self.slot.release()
        return drained
