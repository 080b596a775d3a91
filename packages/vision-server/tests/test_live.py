"""`vision-server serve` end to end: a real uvicorn on loopback, real HTTP, real processes."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import pytest

from vision_core.infer import load_detector

API_KEY = "server-test-key-0123456789"
KEY = {"X-API-Key": API_KEY}
Serve = Callable[..., Any]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"{field} not in /proc/{pid}/status")


def _matches_local(answer: dict[str, Any], image: np.ndarray, local: Any) -> None:
    want = local.predict(image)
    got = answer["detections"]
    assert [d["class_id"] for d in got] == [d.class_id for d in want]
    # a frame batched with others runs through other GEMM blocking: float noise only
    np.testing.assert_allclose([d["score"] for d in got], [d.score for d in want], atol=1e-4)
    np.testing.assert_allclose(
        np.array([d["xyxy"] for d in got]).reshape(-1, 4),
        np.array([d.xyxy for d in want]).reshape(-1, 4),
        atol=0.05,
    )


def test_serve_batches_concurrent_frames_and_records_stats(
    serve: Serve, tiny_yolo_batch_onnx: Path, fake_stats: Any, kit: Any
) -> None:
    server = serve(
        "--set", f"infer.model_path={tiny_yolo_batch_onnx}",
        "--set", "infer.conf=0.001",
        "--set", "deploy.remote.max_wait_ms=20",
        "--set", f"deploy.stats.endpoint={fake_stats.url}",
    )  # fmt: skip
    frames = [kit.encode(kit.scene(240, 180, seed=i)) for i in range(16)]

    async def send() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as c:
            raw = [
                c.post(
                    "/api/v1/frame",
                    content=f,
                    headers={
                        **KEY,
                        "Content-Type": "image/jpeg",
                        "X-Source-Id": "edge-r",
                        "X-Frame-Index": str(i),
                    },
                )
                for i, f in enumerate(frames)
            ]
            js = [
                c.post(
                    "/api/v1/frame",
                    json={"source_id": "edge-j", "frame_index": i, "image_b64": _b64(f)},
                    headers=KEY,
                )
                for i, f in enumerate(frames)
            ]
            return list(await asyncio.gather(*raw, *js))

    answers = asyncio.run(send())
    assert [r.status_code for r in answers] == [200] * 32, [
        r.text for r in answers if r.status_code != 200
    ]
    local = load_detector(tiny_yolo_batch_onnx, conf=0.001)
    for i, r in enumerate(answers):
        data = frames[i % 16]
        _matches_local(
            r.json(), cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), local
        )
    metrics = httpx.get(f"{server.url}/metrics").text
    runs = int(re.search(r"vision_server_batch_size_count (\d+)", metrics).group(1))  # type: ignore[union-attr]
    assert runs < 32  # frames shared model runs
    health = httpx.get(f"{server.url}/health", headers=KEY).json()
    assert health["model"]["batching"] == "dynamic" and health["model"]["input_size"] == [160, 160]

    assert fake_stats.wait_for(32)
    events = list(fake_stats.events.values())
    assert sorted((e["source_id"], e["frame_index"]) for e in events) == sorted(
        [("edge-r", i) for i in range(16)] + [("edge-j", i) for i in range(16)]
    )
    assert {e["mode"] for e in events} == {"stream"}
    assert server.stop() == 0
    out = server.output()
    assert "serving http://127.0.0.1" in out and "finished" in out
    (run_dir,) = (server.workdir / "runs").iterdir()
    metrics_json = json.loads((run_dir / "metrics.json").read_text())
    assert metrics_json["status"] == "ok" and metrics_json["mode"] == "deploy-remote"
    log_lines = (run_dir / "log.jsonl").read_text()
    assert "server.ready" in log_lines and API_KEY not in log_lines
    assert json.loads((run_dir / "config.json").read_text())["infer"]["conf"] == 0.001


HEALTH_PROBE = """
import json, os, sys, time
import httpx
out = []
with httpx.Client(timeout=10) as c:
    while not os.path.exists(sys.argv[2]) or len(out) < 5:
        time.sleep(0.1)
        t0 = time.perf_counter()
        r = c.get(sys.argv[1] + "/health", headers={"X-API-Key": sys.argv[3]})
        body = r.json()
        out.append([time.perf_counter() - t0, r.status_code, body["queue_depth"], body["inference_busy"]])
print(json.dumps(out))
"""


@pytest.mark.slow
def test_overload_sheds_with_503_and_health_stays_responsive(
    serve: Serve, tiny_yolo_batch_onnx: Path, kit: Any
) -> None:
    """300 concurrent frames against a queue of 4: 503s with Retry-After, nothing else.

    /health is probed from another process (as a load balancer would), so the numbers are
    the server's, not those of this test's busy event loop.
    """
    server = serve(
        "--set", f"infer.model_path={tiny_yolo_batch_onnx}",
        "--set", "deploy.remote.queue_size=4",
        "--set", "deploy.remote.max_batch=2",
        "--set", "deploy.stats.endpoint=",
    )  # fmt: skip
    pid = server.proc.pid
    frame = kit.encode(kit.scene(1280, 720, seed=3))  # a big frame: slow to decode and infer
    headers = {**KEY, "Content-Type": "image/jpeg", "X-Source-Id": "flood"}
    url = f"{server.url}/api/v1/frame"
    assert httpx.post(url, content=frame, headers=headers, timeout=30).status_code == 200
    rss_before = _status_kb(pid, "VmRSS")
    done = server.workdir / "flood-done"
    probe = subprocess.Popen(
        [sys.executable, "-c", HEALTH_PROBE, server.url, str(done), API_KEY],
        stdout=subprocess.PIPE,
        text=True,
    )

    async def flood() -> list[httpx.Response | BaseException]:
        limits = httpx.Limits(max_connections=300, max_keepalive_connections=300)
        async with httpx.AsyncClient(timeout=60, limits=limits) as c:
            work = [c.post(url, content=frame, headers=headers) for _ in range(300)]
            return await asyncio.gather(*work, return_exceptions=True)

    time.sleep(0.5)  # the probe is up
    results = asyncio.run(flood())
    done.touch()
    probed = json.loads(probe.communicate(timeout=60)[0])
    answers = [r for r in results if isinstance(r, httpx.Response)]
    assert len(answers) == 300, [r for r in results if not isinstance(r, httpx.Response)][:3]
    codes = [r.status_code for r in answers]
    assert set(codes) <= {200, 503}, sorted(set(codes))
    assert codes.count(503) > 0 and codes.count(200) > 0
    shed = [r for r in answers if r.status_code == 503]
    assert all(int(r.headers["Retry-After"]) >= 1 for r in shed)
    assert all("queue full" in r.json()["detail"] for r in shed)
    latencies = [p[0] for p in probed]
    assert len(probed) >= 5 and all(p[1] == 200 for p in probed)
    assert max(latencies) < 1.0, probed
    assert any(p[2] > 0 or p[3] for p in probed)  # it was probed while saturated
    peak = _status_kb(pid, "VmHWM")
    assert peak - rss_before < 300_000, (rss_before, peak)  # KB: bounded, not 900 frames
    assert server.proc.poll() is None  # no crash
    assert httpx.post(url, content=frame, headers=headers, timeout=30).status_code == 200
    metrics = httpx.get(f"{server.url}/metrics").text
    assert 'vision_server_errors_total{kind="queue_full"}' in metrics


@pytest.mark.slow
def test_workers_each_have_their_own_session_and_outbox(two_worker_server: Any, kit: Any) -> None:
    server = two_worker_server
    pids: set[int] = set()
    frame = kit.encode(kit.graph_image([(1, 0.5, 0.5, 0.2, 0.2, 0.8)]), ".png")
    with httpx.Client(base_url=server.url, timeout=10) as c:
        deadline = time.monotonic() + 60
        while len(pids) < 2 and time.monotonic() < deadline:
            with httpx.Client(base_url=server.url, timeout=10) as fresh:  # new connection
                pids.add(fresh.get("/health", headers=KEY).json()["pid"])
        r = c.post(
            "/api/v1/frame",
            content=frame,
            headers={**KEY, "Content-Type": "image/png", "X-Source-Id": "w"},
        )
        assert r.status_code == 200 and r.json()["detections"][0]["class_name"] == "square"
    assert len(pids) == 2 and server.proc.pid not in pids
    assert sorted(p.name for p in (server.workdir / "outbox").glob("*.db")) == [
        "server-0.db",
        "server-1.db",
    ]
    assert server.stop() == 0


@pytest.mark.slow
def test_a_trained_model_detects_the_same_shapes_as_local_inference(
    serve: Serve, trained_yolo: Any, kit: Any
) -> None:
    """A model that really detects (fixed batch 1: frames run one by one in the thread)."""
    server = serve(
        "--set", f"infer.model_path={trained_yolo.onnx}", "--set", "deploy.stats.endpoint="
    )
    health = httpx.get(f"{server.url}/health", headers=KEY).json()
    assert health["model"]["batching"] == "fixed-1"
    local = load_detector(trained_yolo.onnx)
    found = 0
    val = sorted((trained_yolo.dataset / "images" / "val").glob("*.png"))[:8]
    with httpx.Client(base_url=server.url, timeout=30) as c:
        for path in val:
            data = path.read_bytes()
            r = c.post(
                "/api/v1/frame",
                content=data,
                headers={**KEY, "Content-Type": "image/png", "X-Source-Id": "t"},
            )
            assert r.status_code == 200
            image = cv2.imread(str(path))  # what local inference reads
            want = [(d.class_id, d.class_name, d.score, list(d.xyxy)) for d in local.predict(image)]
            got = [
                (d["class_id"], d["class_name"], d["score"], d["xyxy"])
                for d in r.json()["detections"]
            ]
            assert got == want
            found += len(got)
    assert found >= len(val)  # it finds shapes at the default conf 0.25 (1-3 per image)


def _serve_fails(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).parent / "vision-server"
    base = {"PATH": str(Path(sys.executable).parent), "VISION_INGEST_API_KEY": API_KEY}
    return subprocess.run(
        [str(exe), "serve", "--set", f"run.workdir={tmp_path / 'w'}", *args],
        capture_output=True, text=True, timeout=60, env={**base, **(env or {})}, cwd=tmp_path,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        ((), None, "infer.model_path is empty"),
        (("--set", "infer.model_path=missing.onnx"), None, "missing.onnx does not exist"),
        (("--set", "infer.model_path=model.txt"), None, "is not a valid ONNX model"),
        (
            ("--set", "infer.model_path=MODEL"),
            {"VISION_INGEST_API_KEY": ""},
            "VISION_INGEST_API_KEY",
        ),
        (("--workers", "0"), None, "Invalid value for '--workers'"),
        (("--set", "deploy.remote.queue_size=0"), None, "deploy.remote.queue_size"),
    ],
)
def test_serve_refuses_to_start_with_a_clear_message(
    tmp_path: Path,
    graph_model: Path,
    args: tuple[str, ...],
    env: dict[str, str] | None,
    message: str,
) -> None:
    (tmp_path / "model.txt").write_text("not a model")
    args = tuple(a.replace("MODEL", str(graph_model)) for a in args)
    res = _serve_fails(tmp_path, *args, env=env)
    assert res.returncode != 0
    errors = [line for line in res.stderr.splitlines() if line.startswith("Error: ")]
    assert errors and message in errors[0], res.stderr[-2000:]


def test_serve_reports_a_port_in_use(tmp_path: Path, graph_model: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        res = _serve_fails(
            tmp_path, "--port", str(port), "--set", f"infer.model_path={graph_model}"
        )
    assert res.returncode == 1
    assert "could not start on http://127.0.0.1:" in res.stderr, res.stderr[-2000:]
    (run_dir,) = (tmp_path / "w" / "runs").iterdir()
    assert json.loads((run_dir / "metrics.json").read_text())["status"] == "failed"
