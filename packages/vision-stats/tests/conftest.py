"""Shared fixtures: the store on both engines, an event builder, a live `vision-stats serve`.

Every store test runs twice: on a SQLite file and on a real PostgreSQL (a fresh schema
per test in database `test`; `VISION_STATS_TEST_PG_DSN` overrides the server). Without a
PostgreSQL server the postgres half is SKIPPED with a loud reason.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.fixtures.services import free_port, wait_healthy
from vision_core.types import CrossingEvent, IntervalSummary, StatsEvent, ZoneEvent
from vision_stats.store import StatsStore, open_store

API_KEY = "test-ingest-key-0123456789"
T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
CLASSES = ("car", "person", "bike", "truck")

EventFactory = Callable[..., StatsEvent]


def build_event(
    i: int = 0,
    *,
    source: str = "cam-01",
    ts: datetime | None = None,
    latency: float | None = None,
    counts: dict[str, int] | None = None,
    event_id: str | None = None,
) -> StatsEvent:
    """A deterministic event: i-th frame, 7 s apart from T0, classes cycling with i."""
    counts = {CLASSES[i % 4]: 1 + i % 3, "person": 1} if counts is None else counts
    return StatsEvent(
        event_id=event_id or f"{source}-{i:06d}",
        ts_utc=ts or T0 + timedelta(seconds=7 * i),
        source_id=source,
        mode="local",
        frame_index=i,
        latency_ms=float(i % 50) if latency is None else latency,
        detections_total=sum(counts.values()),
        counts_by_class=counts,
        model="yolo11n",
    )


@pytest.fixture
def make_event() -> EventFactory:
    return build_event


_ids = iter(range(10**9))


def crossing(
    ts: datetime,
    direction: str = "in",
    *,
    line: str = "gate",
    cls: str = "car",
    source: str = "cam-01",
    track: int | None = None,
    event_id: str | None = None,
) -> CrossingEvent:
    """A crossing event (a fresh event_id unless given)."""
    n = next(_ids)
    return CrossingEvent(
        event_id=event_id or f"x-{n:09d}",
        ts_utc=ts,
        source_id=source,
        line=line,
        direction=direction,  # type: ignore[arg-type]
        class_name=cls,
        track_id=n if track is None else track,
        model="yolo11n",
        frame_index=n,
    )


def zone_event(
    ts: datetime,
    action: str = "enter",
    *,
    zone: str = "lobby",
    cls: str = "person",
    source: str = "cam-01",
    dwell: float = 0.0,
    occupancy: int = 0,
    lost: bool = False,
    event_id: str | None = None,
) -> ZoneEvent:
    n = next(_ids)
    return ZoneEvent(
        event_id=event_id or f"z-{n:09d}",
        ts_utc=ts,
        source_id=source,
        zone=zone,
        action=action,  # type: ignore[arg-type]
        class_name=cls,
        track_id=n,
        model="yolo11n",
        frame_index=n,
        dwell_sec=dwell,
        occupancy=occupancy,
        lost=lost,
    )


def summary(
    start: datetime,
    *,
    seconds: float = 60.0,
    source: str = "cam-01",
    frames: int = 900,
    detections: dict[str, int] | None = None,
    tracks: dict[str, int] | None = None,
    new_tracks: dict[str, int] | None = None,
    event_id: str | None = None,
) -> IntervalSummary:
    n = next(_ids)
    return IntervalSummary(
        event_id=event_id or f"s-{n:09d}",
        start_utc=start,
        end_utc=start + timedelta(seconds=seconds),
        source_id=source,
        frames=frames,
        detections_by_class=detections or {},
        tracks_by_class=tracks or {},
        new_tracks_by_class=new_tracks or {},
        model="yolo11n",
    )


def run_in_threads(work: Callable[[int], object], n: int = 4) -> None:
    """work(0), ..., work(n - 1), each in its own thread, all at once; fails on any error."""
    errors: list[BaseException] = []

    def run(k: int) -> None:
        try:
            work(k)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database for one test: a SQLite file, or a PostgreSQL DSN on a fresh schema."""
    if request.param == "sqlite":
        return str(tmp_path / "stats.db")
    return str(request.getfixturevalue("pg_dsn"))


@pytest.fixture
def store(db_url: str) -> Iterator[StatsStore]:
    s = open_store(db_url)
    try:
        yield s
    finally:
        s.close()


@dataclass
class LiveServer:
    """A `vision-stats serve` subprocess on loopback."""

    url: str
    db: str
    proc: subprocess.Popen[bytes]
    log: Path
    headers: dict[str, str] = field(default_factory=lambda: {"X-API-Key": API_KEY})

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        stop_server(self)


def start_server(
    tmp_path: Path, db: str, *extra: str, env: dict[str, str] | None = None
) -> LiveServer:
    port = free_port()
    log = tmp_path / f"serve-{port}.log"
    exe = Path(sys.executable).parent / "vision-stats"
    full_env = {**os.environ, "VISION_STATS_API_KEY": API_KEY, **(env or {})}
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(exe), "serve", "--db", db, "--port", str(port),
             "--set", f"run.workdir={tmp_path / 'work'}", *extra],
            stdout=out, stderr=subprocess.STDOUT, env=full_env, cwd=tmp_path,
        )  # fmt: skip
    server = LiveServer(f"http://127.0.0.1:{port}", db, proc, log)
    url = f"{server.url}/api/v1/stats/health"
    wait_healthy("vision-stats serve", proc, url, 30, server.output, server.stop)
    return server


def stop_server(server: LiveServer) -> None:
    if server.proc.poll() is None:
        server.proc.terminate()
        try:
            server.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.proc.kill()
            server.proc.wait()


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """`vision-stats serve` on a fresh SQLite file (one per test module), key API_KEY,
    dashboard refresh every 1 s."""
    tmp_path = tmp_path_factory.mktemp("live")
    server = start_server(tmp_path, str(tmp_path / "live.db"), "--set", "stats.refresh_sec=1")
    try:
        yield server
    finally:
        stop_server(server)


@pytest.fixture
def serve_stats(tmp_path: Path, services: Callable[..., LiveServer]) -> Callable[..., LiveServer]:
    """Start `vision-stats serve` with any db and flags; stopped after the test."""

    def start(db: str, *extra: str, env: dict[str, str] | None = None) -> LiveServer:
        return services(start_server, tmp_path, db, *extra, env=env)

    return start
