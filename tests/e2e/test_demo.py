"""The main job (`python -m demo --quick`) end to end, and Ctrl-C leaving nothing behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def _demo(workdir: Path, *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "demo", "--quick", "--quiet", "--workdir", str(workdir), *extra],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def _children() -> dict[int, int]:
    """pid -> parent pid of every process on the machine."""
    out = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[int(stat.parent.name)] = int(fields[1])
    return out


def _descendants(pid: int) -> set[int]:
    parents = _children()
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {p for p, pp in parents.items() if pp in frontier} - found
        found |= frontier
    return found


def _mentioning(text: str) -> set[int]:
    """Live processes whose command line mentions `text` (every demo child names its
    config file, which lives in the demo's workdir)."""
    found = set()
    for cmd in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if text in cmd.read_bytes().replace(b"\0", b" ").decode(errors="replace"):
                found.add(int(cmd.parent.name))
        except OSError:
            continue
    return _alive(found)


def _alive(pids: set[int]) -> set[int]:
    alive = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            alive.add(pid)
    return alive


def test_quick_main_job_runs_every_package_and_cleans_up(tmp_path: Path) -> None:
    proc = _demo(tmp_path / "demo")
    out, _ = proc.communicate(timeout=600)
    text = out.decode(errors="replace")
    assert proc.returncode == 0, text
    summary = json.loads((tmp_path / "demo" / "summary.json").read_text())
    edge, stats = summary["edge"], summary["stats"]
    assert edge["local"]["frames"] == edge["stream"]["frames"] == 48
    assert stats["overview"]["events_total"] == stats["expected_events"] == 96
    assert stats["sources"] == {"edge-local-01": 48, "edge-stream-01": 48}
    assert summary["train"]["map50_fp32"] is not None and summary["train"]["int8_speedup"]
    assert 0.0 <= summary["autolabel"]["precision"] <= 1.0
    assert summary["train"]["epochs"] == 2 and summary["train"]["train_seconds"] > 0
    for line in ("mAP50 FP32", "INT8 speed-up", "training", "autolabel", "edge local", "dashboard"):
        assert line in text
    assert _mentioning(str(tmp_path / "demo")) == set()


def test_ctrl_c_during_the_main_job_leaves_no_process(tmp_path: Path) -> None:
    workdir = tmp_path / "demo"
    proc = _demo(workdir)
    train_log = workdir / "logs" / "train.log"  # interrupt it in training: the longest step,
    deadline = time.monotonic() + 300  # with ultralytics' dataloader workers running

    def training() -> bool:
        return train_log.exists() and b"dataset ok" in train_log.read_bytes()

    while not training() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    if not training():
        proc.kill()
        pytest.fail(f"the demo never reached training:\n{proc.communicate()[0].decode()[-3000:]}")
    time.sleep(2.0)
    started = _descendants(proc.pid)
    assert len(started) >= 1  # vision-train (and its dataloader workers)
    os.kill(proc.pid, signal.SIGINT)
    out, _ = proc.communicate(timeout=90)
    assert proc.returncode == 130, out.decode(errors="replace")
    assert b"interrupted" in out
    time.sleep(0.5)
    assert _alive(started) == set(), "processes left running after Ctrl-C"
    assert _mentioning(str(workdir)) == set()
