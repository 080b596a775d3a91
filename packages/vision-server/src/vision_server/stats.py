"""The server's stats: one StatsEvent per frame -> its worker's outbox -> vision-stats.

The server OWNS the stats of stream mode: an edge device streaming frames here records
none of its own (see the README), so every frame is counted once, by the process that ran
the model on it. Events are built and committed to the outbox in the inference thread,
right after their batch (one transaction per batch), before the clients get their answers;
the sender thread POSTs them to `deploy.stats.endpoint`. The outbox and sender lifecycle
is vision-core's `StatsRecorder` (the edge's too): nothing here can fail or slow a frame
request beyond that local commit: an outbox error is counted and logged, and the frame is
answered anyway.

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
import socket
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from vision_core.logging import StructuredLogger
from vision_core.stats import Outbox, OutboxError, StatsRecorder
from vision_core.types import Detection, StatsEvent, make_stats_event, utc_now
from vision_server.settings import ServerSettings

__all__ = ["FrameMeta", "ServerStats", "event_id_for"]

MODE = "stream"
MAX_SLOTS = 1024
_EVENT_NS = uuid.UUID("5f0c7f0e-4d55-4bb4-9f43-7a1c2f6d3e01")


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
    """The stats recorder (outbox, and sender when an endpoint is set) of one server worker."""

    def __init__(self, settings: ServerSettings, log: StructuredLogger, model_name: str) -> None:
        self.settings = settings
        self.log = log
        self.model_name = model_name
        self.slot = _Slot.claim(settings.outbox_dir)
        sink = settings.stats
        try:
            self.recorder = StatsRecorder.open(
                self.slot.db,
                sink,
                api_key=settings.stats_api_key,
                logger=log,
                name=f"stats-sender-{self.slot.index}",
                device_id=f"server-{socket.gethostname()}-{self.slot.index}",
                mqtt_extra="vision-server[mqtt]",
            )
        except BaseException:
            self.slot.release()
            raise
        self.outbox = self.recorder.outbox
        self.adopted = self._adopt_orphans()
        log.info(
            "server.stats",
            f"stats: outbox {self.slot.db} ({self.outbox.pending()} pending"
            + (f", {self.adopted} adopted" if self.adopted else "")
            + f") -> {self.recorder.destination or 'kept locally (deploy.stats.endpoint is empty)'}",
            outbox=str(self.slot.db),
            endpoint=self.recorder.destination,
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
        self.recorder.record(self.events_for(metas, detections, done_at))

    def snapshot(self) -> dict[str, Any]:
        snap = self.recorder.snapshot()
        snap["outbox"] = snap.pop("path")
        snap["endpoint"] = self.recorder.destination
        return snap

    def close(self) -> bool:
        """Flush up to deploy.stats.flush_timeout_sec, close; True when nothing is pending."""
        try:
            drained = self.recorder.close()
            pending = self.recorder.snapshot().get("pending", 0)
            if pending:
                self.log.info(
                    "server.stats_kept",
                    f"{pending} stats event(s) not yet delivered stay in {self.slot.db} for "
                    "the next start",
                    pending=pending,
                )
        finally:
            self.slot.release()
        return drained
