"""vision-edge fixtures: the edge as a subprocess (the real console script), image folders."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.services import INGEST_KEY, STATS_KEY, Service, start_stats, stats_endpoint

EDGE = Path(sys.executable).parent / "vision-edge"


@dataclass
class EdgeRun:
    proc: subprocess.CompletedProcess[str]
    run_dir: Path | None
    metrics: dict[str, Any]  # metrics.json's "metrics"
    record: dict[str, Any]  # the whole metrics.json
    artifacts: dict[str, Any]

    @property
    def output(self) -> str:
        return self.proc.stdout + self.proc.stderr


def edge_argv(workdir: Path, sets: Sequence[str], command: str = "run") -> list[str]:
    argv = [str(EDGE), command, "--set", f"run.workdir={workdir}"]
    for item in sets:
        argv += ["--set", item]
    return argv


def edge_env(**extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "VISION_STATS_API_KEY": STATS_KEY,
        "VISION_INGEST_API_KEY": INGEST_KEY,
        **extra,
    }


def newest_run(workdir: Path) -> Path | None:
    runs = sorted((workdir / "runs").glob("*/metrics.json"), key=lambda p: p.stat().st_mtime_ns)
    return runs[-1].parent if runs else None


def read_run(run_dir: Path | None) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    if run_dir is None:
        return {}, {}, {}
    record = json.loads((run_dir / "metrics.json").read_text())
    artifacts = json.loads((run_dir / "artifacts.json").read_text())
    return record["metrics"], record, artifacts


def run_edge(
    workdir: Path, *sets: str, timeout: float = 300, env: dict[str, str] | None = None
) -> EdgeRun:
    """`vision-edge run` to its end; the newest run dir's records."""
    proc = subprocess.run(
        edge_argv(workdir, sets),
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env or edge_env(),
    )
    run_dir = newest_run(workdir)
    metrics, record, artifacts = read_run(run_dir)
    return EdgeRun(proc, run_dir, metrics, record, artifacts)


def start_edge(workdir: Path, *sets: str, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen(
            edge_argv(workdir, sets), stdout=out, stderr=subprocess.STDOUT, env=edge_env()
        )


def sigkill_rounds(
    work: Path,
    sets: Sequence[str],
    logs: Path,
    *,
    rounds: int,
    grow: int,
    committed_ids: Callable[[], set[str]],
) -> set[str]:
    """Start the edge `rounds` times and SIGKILL it once `grow` more events are committed to
    its outbox (`committed_ids()`: the ids there, after an integrity check). After every
    kill, every event committed before it is still there. The ids committed in the end."""
    from tests.fixtures.waiting import wait_for

    def count() -> int:
        try:
            return len(committed_ids())
        except sqlite3.Error:  # the file mid-creation
            return 0

    committed: set[str] = set()
    for k in range(rounds):
        before = count()
        proc = start_edge(work, *sets, log=logs / f"kill-{k}.log")
        try:
            wait_for(lambda b=before: count() >= b + grow, 90, "events committed to the outbox")
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        now = committed_ids()
        assert committed <= now, "an event committed before an earlier kill is gone"
        committed = now
    return committed


@dataclass
class LiveEdge:
    """`vision-edge run` running in the background, sending to a real vision-stats."""

    stats: Service
    work: Path
    log: Path
    proc: subprocess.Popen[bytes]

    def rows(self, source_id: str | None = None) -> list[tuple[str, str, int, int]]:
        from tests.fixtures.services import stats_rows

        return stats_rows(self.stats.extra["db"], source_id)

    def end(self, sig: int, timeout: float = 60) -> int:
        """Send `sig`, wait for the exit (killed after `timeout`); the exit code."""
        try:
            self.proc.send_signal(sig)
            return self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()


def video_sets(video: Path, model: Path | None = None) -> list[str]:
    """The --set values that make `video` the source (and `model` the detector)."""
    detector = [f"infer.model_path={model}"] if model is not None else []
    return [*detector, "deploy.edge.source=video", f"deploy.edge.video_path={video}"]


def start_edge_with_stats(tmp_path: Path, services: Callable[..., Service], *sets: str) -> LiveEdge:
    """A vision-stats service, and an edge in the background posting to it."""
    stats = services(start_stats, tmp_path / "stats")
    work, log = tmp_path / "wd", tmp_path / "edge.log"
    proc = start_edge(work, *sets, f"deploy.stats.endpoint={stats_endpoint(stats)}", log=log)
    return LiveEdge(stats, work, log, proc)


def run_local_reference(tmp_path: Path, model: Path, folder: Path) -> EdgeRun:
    """Local mode on `folder`, no stats: what stream mode's detections are compared with."""
    return run_edge(
        tmp_path / "wd-local",
        f"infer.model_path={model}",
        "deploy.edge.source=images",
        f"deploy.edge.images_dir={folder}",
        "deploy.stats.endpoint=",
    )


@pytest.fixture(scope="session")
def val_images(trained_yolo: Any) -> Path:
    """The trained model's val images (PNGs; truth labels in labels/val)."""
    return Path(trained_yolo.dataset) / "images" / "val"


@pytest.fixture
def mixed_folder(tmp_path: Path, val_images: Path) -> tuple[Path, list[Path]]:
    """8 good images (one nested), a corrupt JPEG, a zero-byte file, a .txt."""
    folder = tmp_path / "frames"
    (folder / "nested").mkdir(parents=True)
    good = sorted(val_images.glob("*.png"))[:8]
    copied = []
    for i, src in enumerate(good):
        dst = (folder / "nested" if i == 7 else folder) / src.name
        shutil.copy(src, dst)
        copied.append(dst)
    (folder / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF" + bytes(range(256)))
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "notes.txt").write_text("not an image")
    return folder, copied
