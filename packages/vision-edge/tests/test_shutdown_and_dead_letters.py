"""A camera that freezes mid-stream (a real MJPEG-over-HTTP camera on loopback that stops
sending): SIGTERM still ends the run within 5 s, with its events flushed. A poison event in
a device's outbox: the events behind it are delivered, it ends in the dead letters and
`vision-edge status` shows it."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from tests.fixtures.services import Service, start_stats, stats_endpoint, stats_rows
from tests.fixtures.waiting import wait_for
from vision_core.config import load_config
from vision_core.stats import Outbox
from vision_core.types import make_stats_event
from vision_edge.runtime import outbox_path

from .conftest import edge_argv, edge_env, newest_run, read_run, start_edge_with_stats

pytestmark = pytest.mark.slow


class FreezingCamera:
    """An MJPEG camera (multipart/x-mixed-replace over HTTP): `frames` frames at `fps`,
    then it freezes: the connection stays open and nothing more comes."""

    def __init__(self, frames: int, fps: float = 10.0) -> None:
        self.frames, self.period = frames, 1.0 / fps
        self.sent = 0
        self.frozen = threading.Event()
        self.release = threading.Event()
        ok, buf = cv2.imencode(".jpg", np.full((96, 128, 3), 120, np.uint8))
        assert ok
        self.jpeg = bytes(buf)
        camera = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                try:
                    for _ in range(camera.frames):
                        part = (
                            b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: "
                            + str(len(camera.jpeg)).encode()
                            + b"\r\n\r\n"
                            + camera.jpeg
                            + b"\r\n"
                        )
                        self.wfile.write(part)
                        self.wfile.flush()
                        camera.sent += 1
                        time.sleep(camera.period)  # the camera's frame rate
                    camera.frozen.set()
                    camera.release.wait(120)  # frozen: the socket stays open, silent
                except OSError:
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/cam.mjpg"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def freezing_camera() -> Iterator[FreezingCamera]:
    cam = FreezingCamera(frames=40)
    try:
        yield cam
    finally:
        cam.close()


def test_sigterm_ends_a_run_on_a_frozen_camera_within_5_s_with_events_flushed(
    tmp_path: Path,
    tiny_yolo_onnx: Path,
    freezing_camera: FreezingCamera,
    services: Callable[..., Service],
) -> None:
    edge = start_edge_with_stats(
        tmp_path,
        services,
        f"infer.model_path={tiny_yolo_onnx}",
        "deploy.edge.source=camera",
        f"deploy.edge.camera={freezing_camera.url}",
        "deploy.edge.device_id=cam-frozen",
    )
    assert freezing_camera.frozen.wait(60), edge.log.read_text()
    # the edge has taken what the camera sent and now waits in a read that never returns
    wait_for(lambda: len(edge.rows("cam-frozen")) >= 5, 60, "events")
    t0 = time.monotonic()
    code = edge.end(signal.SIGTERM, timeout=30)
    took = time.monotonic() - t0
    assert code == 0, edge.log.read_text()
    assert took < 5.0, f"SIGTERM took {took:.1f}s on a frozen camera"
    work = edge.work
    metrics, record, artifacts = read_run(newest_run(work))
    assert record["status"] == "ok" and artifacts["stopped_by"] == "SIGTERM"
    assert metrics["events_pending"] == 0  # flushed before exit
    rows = edge.rows("cam-frozen")
    assert len(rows) == metrics["frames"] >= 5


def test_a_poison_event_goes_to_dead_letters_and_the_rest_is_delivered(
    tmp_path: Path,
    tiny_yolo_onnx: Path,
    synth_dataset: Path,
    services: Callable[..., Service],
) -> None:
    stats = services(start_stats, tmp_path / "stats")
    work = tmp_path / "wd"
    sets = [
        f"infer.model_path={tiny_yolo_onnx}",
        "deploy.edge.source=images",
        f"deploy.edge.images_dir={synth_dataset / 'images' / 'val'}",
        "deploy.edge.device_id=cam-poison",
        f"deploy.stats.endpoint={stats_endpoint(stats)}",
    ]
    # an event the statistics service refuses (a source id past its length cap), left in
    # the device's outbox by an earlier run, ahead of everything this run records
    cfg = load_config(None, [f"run.workdir={work}", *sets])
    poison = make_stats_event(
        source_id="x" * 5000, mode="local", frame_index=0, latency_ms=1.0, detections=[]
    )
    with Outbox(outbox_path(cfg)) as box:
        box.put(poison)
    proc = subprocess.run(
        edge_argv(work, sets), capture_output=True, text=True, timeout=300, env=edge_env()
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    metrics, _, _ = read_run(newest_run(work))
    assert metrics["frames"] == 16
    assert metrics["events_pending"] == 0
    assert metrics["outbox"]["dead_letters"] == 1
    rows = stats_rows(stats.extra["db"], "cam-poison")
    assert sorted(r[2] for r in rows) == list(range(16))  # every event behind it delivered
    status = subprocess.run(
        [*edge_argv(work, sets, command="status"), "--json"],
        capture_output=True,
        text=True,
        env=edge_env(),
        check=True,
    )
    info = json.loads(status.stdout)
    assert (info["pending"], info["dead_letters"]) == (0, 1)
    human = subprocess.run(
        edge_argv(work, sets, command="status"), capture_output=True, text=True, env=edge_env()
    )
    assert "dead letters    1" in human.stdout
    export = tmp_path / "refused.jsonl"
    listed = subprocess.run(
        [*edge_argv(work, sets, command="dead-letters"), "--export", str(export)],
        capture_output=True,
        text=True,
        env=edge_env(),
    )
    assert listed.returncode == 0, listed.stderr
    (record,) = [json.loads(line) for line in export.read_text().splitlines()]
    assert record["event_id"] == poison.event_id and record["status"] == 422
    assert record["event"]["source_id"] == "x" * 5000
