"""Hardening of vision-server (issue #13): a 5xx is short and generic with a request id
(details and traceback in the log), the 431 header cap on a real uvicorn, /health without
the key, frame_index 2**70 never reaches the outbox, and --workers 2 metrics that sum."""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar.testing import TestClient

from vision_core.logging import StructuredLogger, read_jsonl
from vision_server.app import create_app
from vision_server.settings import ServerSettings

API_KEY = "server-test-key-0123456789"
KEY = {"X-API-Key": API_KEY}


def _png(kit: Any) -> bytes:
    return bytes(kit.encode(kit.graph_image([(1, 0.5, 0.5, 0.2, 0.2, 0.8)]), ".png"))


def test_an_inference_fault_is_a_generic_500_and_the_log_has_the_traceback(
    make_settings: Callable[..., ServerSettings], kit: Any, tmp_path: Path
) -> None:
    log_path = tmp_path / "server.jsonl"
    log = StructuredLogger(log_path)
    app = create_app(make_settings(), log=log)
    secret_path = "/srv/models/private/model.onnx"

    def broken(images: list[Any]) -> list[Any]:
        raise RuntimeError(f"ONNX Runtime failed reading {secret_path}: bad node Conv_3")

    with TestClient(app) as client:
        app.state.runtime.batcher._infer = broken
        r = client.post(
            "/api/v1/frame",
            content=_png(kit),
            headers={**KEY, "Content-Type": "image/png", "X-Source-Id": "c"},
        )
        assert r.status_code == 500
        body = r.json()
        assert set(body) == {"status_code", "detail", "request_id"}
        assert body["request_id"] == r.headers["x-request-id"]
        for leak in (secret_path, "Conv_3", "RuntimeError", "Traceback", "onnx"):
            assert leak not in r.text, leak
        assert client.get("/health").status_code == 200  # still serving
    log.close()
    (line,) = [ln for ln in read_jsonl(log_path) if ln.get("request_id") == body["request_id"]]
    assert line["level"] == "ERROR" and secret_path in line["message"]
    assert "Traceback" in line["traceback"] and "broken" in line["traceback"]


def test_health_without_the_key_is_liveness_only(
    make_settings: Callable[..., ServerSettings],
) -> None:
    with TestClient(create_app(make_settings())) as client:
        r = client.get("/health")
        assert r.status_code == 200 and r.json() == {"status": "ok"}
        assert client.get("/health", headers={"X-API-Key": "wrong"}).json() == {"status": "ok"}
        detail = client.get("/health", headers=KEY).json()
        assert detail["pid"] > 0 and detail["model"]["path"].endswith(".onnx")


def test_frame_index_2_70_is_refused_and_never_reaches_the_outbox(
    make_settings: Callable[..., ServerSettings], kit: Any
) -> None:
    settings = make_settings()
    with TestClient(create_app(settings)) as client:
        for headers, params in (
            ({"X-Frame-Index": str(2**70)}, ""),
            ({}, f"?frame_index={2**70}"),
        ):
            r = client.post(
                "/api/v1/frame" + params,
                content=_png(kit),
                headers={**KEY, "Content-Type": "image/png", "X-Source-Id": "c", **headers},
            )
            assert r.status_code == 422 and r.json()["extra"]["field"] == "frame_index", r.text
        import base64

        r = client.post(
            "/api/v1/frame",
            json={
                "source_id": "c",
                "frame_index": 2**70,
                "image_b64": base64.b64encode(_png(kit)).decode(),
            },
            headers=KEY,
        )
        assert r.status_code == 422 and r.json()["extra"]["field"] == "frame_index"
    with sqlite3.connect(settings.workdir / "outbox" / "server-0.db") as conn:
        assert conn.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 0


def test_headers_over_16_kib_are_431_on_a_real_server(live_graph_server: Any, kit: Any) -> None:
    url = live_graph_server.url
    big = {"X-Pad": "p" * 20_000}
    for method, path in (("POST", "/api/v1/frame"), ("GET", "/health"), ("GET", "/nope")):
        r = httpx.request(method, url + path, headers={**KEY, **big}, timeout=10)
        assert r.status_code == 431, (path, r.text)
        assert r.json()["status_code"] == 431 and r.headers["x-request-id"]
    r = httpx.post(
        url + "/api/v1/frame",
        content=_png(kit),
        headers={**KEY, "Content-Type": "image/png", "X-Source-Id": "c", "X-Pad": "p" * 8000},
        timeout=10,
    )
    assert r.status_code == 200
    assert (
        'vision_server_errors_total{kind="headers_too_large"} 3.0'
        in httpx.get(url + "/metrics").text
    )


@pytest.mark.slow
def test_two_workers_metrics_sum_both_and_the_run_dir_has_config_json_at_once(
    two_worker_server: Any, kit: Any
) -> None:
    server = two_worker_server
    (run_dir,) = (server.workdir / "runs").iterdir()
    assert (run_dir / "config.json").is_file()  # while it runs, not only at the end
    frame = _png(kit)
    pids: set[int] = set()
    deadline = time.monotonic() + 60
    sent = 0
    while (len(pids) < 2 or sent < 12) and time.monotonic() < deadline:
        with httpx.Client(base_url=server.url, timeout=10) as fresh:  # a new connection
            r = fresh.post(
                "/api/v1/frame",
                content=frame,
                headers={**KEY, "Content-Type": "image/png", "X-Source-Id": "w"},
            )
            assert r.status_code == 200
            sent += 1
            pids.add(fresh.get("/health", headers=KEY).json()["pid"])
    assert len(pids) == 2, pids  # both workers answered
    totals = set()
    for _ in range(6):  # whichever worker answers the scrape, it sums both
        with httpx.Client(base_url=server.url, timeout=10) as fresh:
            text = fresh.get("/metrics").text
        m = re.search(r"^vision_server_frames_total (\S+)$", text, re.M)
        assert m, text[:2000]
        totals.add(float(m.group(1)))
    assert totals == {float(sent)}, (totals, sent)
    assert server.stop() == 0
