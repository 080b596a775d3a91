"""Poison frames through vision-server's frame endpoint, its stats going to a real
`vision-stats serve` on SQLite and on PostgreSQL: never a 5xx; every frame the server
accepts becomes an event vision-stats accepts (none refused, none stuck); afterwards the
stats reads work and a normal frame for the same source is counted."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from litestar import Litestar
from litestar.testing import TestClient

from tests.fixtures.poison import BIG, POISON_SOURCE
from tests.fixtures.services import STATS_KEY, Service, start_stats, stats_endpoint
from vision_server.app import create_app
from vision_server.settings import ServerSettings

API_KEY = "server-test-key-0123456789"
KEY = {"X-API-Key": API_KEY}


def _png() -> bytes:
    import cv2

    ok, buf = cv2.imencode(".png", np.zeros((16, 16, 3), np.uint8))
    assert ok
    return buf.tobytes()


PNG = _png()
PNG_B64 = base64.b64encode(PNG).decode()


def _json(**fields: Any) -> dict[str, Any]:
    body = {"image_b64": PNG_B64, "source_id": POISON_SOURCE, "frame_index": 1, **fields}
    return {"content": json.dumps(body).encode(), "headers": {"Content-Type": "application/json"}}


def _raw(query: str = "", **headers: str) -> dict[str, Any]:
    hdrs = {"Content-Type": "image/png", "X-Source-Id": POISON_SOURCE, **headers}
    return {"content": PNG, "headers": hdrs, "query": query}


def _bytes(body: bytes, content_type: str = "application/json") -> dict[str, Any]:
    return {"content": body, "headers": {"Content-Type": content_type}}


FRAME_POISON: list[tuple[str, dict[str, Any], int]] = [
    ("frame_index 2**70", _json(frame_index=2**70), 422),
    ("frame_index 2**63", _json(frame_index=2**63), 422),
    ("frame_index 2**53", _json(frame_index=2**53), 422),
    ("frame_index 10**400", _json(frame_index=10**400), 422),
    ("frame_index -1", _json(frame_index=-1), 422),
    ("frame_index a float", _json(frame_index=1.5), 422),
    ("ts year 9999 with a negative offset", _json(ts_utc="9999-12-31T23:59:59-05:00"), 422),
    ("ts year 1 with a positive offset", _json(ts_utc="0001-01-01T00:00:00+05:00"), 422),
    ("ts 1970", _json(ts_utc="1970-01-01T00:00:00Z"), 422),
    ("ts without a zone", _json(ts_utc="2026-01-01T00:00:00"), 422),
    ("ts not a time", _json(ts_utc="yesterday"), 422),
    ("NUL in source_id", _json(source_id="cam\x00"), 422),
    ("OSC title in source_id", _json(source_id="\x1b]0;pwned\x07"), 422),
    ("clear screen in source_id", _json(source_id="\x1b[2J"), 422),
    ("bidi override in source_id", _json(source_id="cam\u202e"), 422),
    ("C1 CSI in source_id", _json(source_id="cam\x9b"), 422),
    ("empty source_id", _json(source_id=""), 422),
    ("1 MB source_id", _json(source_id="s" * BIG), 422),
    ("image_b64 not base64", _json(image_b64="@@@"), 422),
    ("image_b64 1 MB of base64 junk", _json(image_b64="QUJD" * (BIG // 4)), 422),
    ("unknown field, deep nesting", _bytes(b'{"x": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"), 422),
    ("nesting 100 000 deep", _bytes(b"[" * 100_000 + b"]" * 100_000), 422),
    ("NaN token", _bytes(b'{"frame_index": NaN}'), 400),
    ("invalid UTF-8", _bytes(b'{"source_id": "\xff\xfe"}'), 400),
    ("UTF-16 body", _bytes(json.dumps({"source_id": "x"}).encode("utf-16")), 400),
    ("text/plain", _bytes(b"hello", "text/plain"), 415),
    ("multipart", _bytes(b"--x--", "multipart/form-data; boundary=x"), 415),
    ("header X-Frame-Index 2**70", _raw(**{"X-Frame-Index": str(2**70)}), 422),
    ("header X-Frame-Index -5", _raw(**{"X-Frame-Index": "-5"}), 422),
    ("header X-Frame-Index 1e3", _raw(**{"X-Frame-Index": "1e3"}), 422),
    ("header X-Ts-Utc year 9999", _raw(**{"X-Ts-Utc": "9999-12-31T23:59:59-05:00"}), 422),
    ("header X-Source-Id 300 characters", _raw(**{"X-Source-Id": "s" * 300}), 400),
    ("query source_id with NUL", _raw("source_id=cam%00x", **{"X-Source-Id": ""}) | {"headers": {"Content-Type": "image/png"}}, 422),
    ("query frame_index 2**64", _raw(f"frame_index={2**64}"), 422),
    ("20 KB of headers", _raw(**{"X-Pad": "p" * 20_000}), 431),
]  # fmt: skip


@pytest.fixture(scope="module")
def stats(module_db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """`vision-stats serve` on SQLite, then on PostgreSQL (module_db_url's two params)."""
    svc = start_stats(tmp_path_factory.mktemp("stats"), module_db_url)
    try:
        yield svc
    finally:
        svc.stop()


@pytest.fixture
def server(
    stats: Service, make_settings: Callable[..., ServerSettings]
) -> Iterator[TestClient[Litestar]]:
    settings = make_settings(
        deploy__stats__endpoint=stats_endpoint(stats),
        deploy__stats__max_backoff_sec=0.5,
        environ={"VISION_INGEST_API_KEY": API_KEY, "VISION_STATS_API_KEY": STATS_KEY},
    )
    with TestClient(create_app(settings)) as client:
        yield client


def _send(client: TestClient[Litestar], req: dict[str, Any]) -> httpx.Response:
    query = req.get("query", "")
    return client.post(
        "/api/v1/frame" + (f"?{query}" if query else ""),
        content=req["content"],
        headers={**KEY, **req["headers"]},
    )


def _stats_of(stats: Service, path: str) -> Any:
    r = httpx.get(f"{stats.url}/api/v1/stats/{path}", timeout=10)
    assert r.status_code == 200, (path, r.text[:300])
    return r.json()


def test_poison_frames_get_4xx_and_the_stats_stay_whole(
    server: TestClient[Litestar], stats: Service, tmp_path: Path
) -> None:
    frames_before = _stats_of(stats, f"overview?source={POISON_SOURCE}")["events_total"]
    failures = []
    for name, req, status in FRAME_POISON:
        r = _send(server, req)
        body = r.json()
        if r.status_code != status or body.get("status_code") != status:
            failures.append((name, status, r.status_code, r.text[:200]))
        assert len(r.content) < 4096, name
    assert not failures, failures
    assert len(FRAME_POISON) >= 30
    # a normal frame for the same source: served, its event delivered and counted
    r = _send(server, _json(frame_index=7, ts_utc="2026-06-01T12:00:00Z"))
    assert r.status_code == 200 and r.json()["stats_recorded"], r.text
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        snap = server.get("/health", headers=KEY).json()["stats"]
        if snap["pending"] == 0:
            break
        time.sleep(0.1)
    assert snap["pending"] == 0 and snap.get("rejected_total", 0) == 0, snap
    assert snap.get("dead_letters", 0) == 0, snap
    assert _stats_of(stats, f"overview?source={POISON_SOURCE}")["events_total"] == frames_before + 1
    for path in ("overview", "recent?limit=1000", "classes", "series", "sources"):
        _stats_of(stats, path)
    assert "Traceback" not in stats.output()
