"""The app through Litestar's test client: bad input, auth, limits, health, metrics, stats."""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import re
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import msgspec
import numpy as np
import pytest
from litestar import Litestar
from litestar.testing import TestClient

from tests.fixtures.waiting import wait_for
from vision_core.infer import load_detector
from vision_core.logging import StructuredLogger
from vision_core.web import auth as web_auth
from vision_server.app import create_app
from vision_server.errors import ServerConfigError
from vision_server.settings import ServerSettings

API_KEY = "server-test-key-0123456789"
KEY = {"X-API-Key": API_KEY}
TWO_BOXES = [(0, 0.4, 0.4, 0.2, 0.2, 0.9), (2, 0.8, 0.6, 0.1, 0.3, 0.6)]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.fixture
def client(make_settings: Callable[..., ServerSettings]) -> Iterator[TestClient[Litestar]]:
    with TestClient(create_app(make_settings())) as c:
        yield c


# -- the table of bad (and odd but valid) inputs --------------------------------------------------

RequestBuilder = Callable[[Any], dict[str, Any]]


def _json(**fields: Any) -> RequestBuilder:
    return lambda kit: {"json": {"source_id": "cam-1", **fields}}


def _raw(
    build: Callable[[Any], bytes], content_type: str = "image/jpeg", **headers: str
) -> RequestBuilder:
    def make(kit: Any) -> dict[str, Any]:
        hdrs = {"Content-Type": content_type, "X-Source-Id": "cam-1", **headers}
        return {"content": build(kit), "headers": hdrs}

    return make


def _jpeg(kit: Any) -> bytes:
    return bytes(kit.encode(kit.scene(64, 48)))


def _alpha_png(kit: Any) -> bytes:
    img = kit.scene(64, 48)
    return bytes(kit.encode(np.dstack([img, np.full(img.shape[:2], 90, np.uint8)]), ".png"))


BAD_INPUTS: list[tuple[str, RequestBuilder, int, str, str | None]] = [
    # id, request, status, detail fragment, field named in extra
    ("invalid base64", _json(image_b64="@@not-base64@@"), 422, "not valid base64", "image_b64"),
    ("base64 of text", _json(image_b64=b64(b"hello world")), 422, "not a JPEG or PNG", "image_b64"),
    ("empty image_b64", _json(image_b64=""), 422, "image_b64", "image_b64"),
    ("truncated JPEG json", lambda k: {"json": {"source_id": "c", "image_b64": b64(_jpeg(k)[:-300])}}, 422, "JPEG is truncated", "image_b64"),
    ("truncated JPEG raw", _raw(lambda k: _jpeg(k)[: len(_jpeg(k)) // 2]), 422, "JPEG is truncated", None),
    ("truncated PNG raw", _raw(lambda k: k.encode(k.scene(64, 48), ".png")[:-40], "image/png"), 422, "PNG is truncated", None),
    ("GIF raw", _raw(lambda k: b"GIF89a" + b"\0" * 64, "image/png"), 422, "looks like GIF", None),
    ("random bytes raw", _raw(lambda k: bytes(range(256)) * 4), 422, "not a JPEG or PNG", None),
    ("20000x20000 PNG", _raw(lambda k: k.huge_png(20000, 20000), "image/png"), 413, "20000x20000 = 400000000 pixels", None),
    ("20000x20000 JPEG json", lambda k: {"json": {"source_id": "c", "image_b64": b64(k.huge_jpeg(20000, 20000))}}, 413, "above deploy.remote.max_image_pixels", None),
    ("PNG with alpha raw", _raw(_alpha_png, "image/png"), 422, "PNG with an alpha channel", None),
    ("PNG with alpha json", lambda k: {"json": {"source_id": "c", "image_b64": b64(_alpha_png(k))}}, 422, "alpha channel", None),
    ("1x1 PNG raw", _raw(lambda k: k.encode(np.zeros((1, 1, 3), np.uint8), ".png"), "image/png"), 422, "is 1x1: too small", None),
    ("1x1 JPEG json", lambda k: {"json": {"source_id": "c", "image_b64": b64(k.encode(np.zeros((1, 1, 3), np.uint8)))}}, 422, "at least 8 pixels", None),
    ("empty body json", lambda k: {"content": b"", "headers": {"Content-Type": "application/json"}}, 400, "request body is empty", None),
    ("empty body raw", _raw(lambda k: b""), 400, "request body is empty", None),
    ("text/plain", lambda k: {"content": b"hello", "headers": {"Content-Type": "text/plain"}}, 415, "Content-Type 'text/plain'", None),
    ("image/gif", _raw(lambda k: b"GIF89a", "image/gif"), 415, "Content-Type 'image/gif'", None),
    ("no content type", lambda k: {"content": b"x"}, 415, "no Content-Type", None),
    ("malformed JSON", lambda k: {"content": b'{"source_id": ', "headers": {"Content-Type": "application/json"}}, 400, "not valid JSON", None),
    ("JSON array", lambda k: {"json": [1, 2]}, 422, "Expected `object`", None),
    ("missing source_id", lambda k: {"json": {"image_b64": b64(_jpeg(k))}}, 422, "missing required field `source_id`", "source_id"),
    ("missing image_b64", _json(), 422, "missing required field `image_b64`", "image_b64"),
    ("extra field", lambda k: {"json": {"source_id": "c", "image_b64": b64(_jpeg(k)), "camera": 2}}, 422, "unknown field `camera`", "camera"),
    ("frame_index not int", lambda k: {"json": {"source_id": "c", "image_b64": b64(_jpeg(k)), "frame_index": "x"}}, 422, "Expected `int`", "frame_index"),
    ("negative frame_index", lambda k: {"json": {"source_id": "c", "image_b64": b64(_jpeg(k)), "frame_index": -1}}, 422, ">= 0", "frame_index"),
    ("naive ts_utc", lambda k: {"json": {"source_id": "c", "image_b64": b64(_jpeg(k)), "ts_utc": "2024-01-01T00:00:00"}}, 422, "timezone", "ts_utc"),
    ("raw without source id", lambda k: {"content": _jpeg(k), "headers": {"Content-Type": "image/jpeg"}}, 422, "source_id is missing", "source_id"),
    ("raw bad frame index", _raw(_jpeg, **{"X-Frame-Index": "seven"}), 422, "frame_index: expected an integer", "frame_index"),
    ("raw bad timestamp", _raw(_jpeg, **{"X-Ts-Utc": "yesterday"}), 422, "ts_utc", "ts_utc"),
]  # fmt: skip

VALID_ODD_INPUTS: list[tuple[str, RequestBuilder, tuple[int, int]]] = [
    # the smallest accepted frame: letterboxed like any other, no crash
    ("8x8 JPEG json", lambda k: {"json": {"source_id": "c", "image_b64": b64(k.encode(np.zeros((8, 8, 3), np.uint8)))}}, (8, 8)),
    ("grayscale PNG", _raw(lambda k: k.encode(np.zeros((9, 8), np.uint8), ".png"), "image/png"), (8, 9)),
    ("data URL", lambda k: {"json": {"source_id": "c", "image_b64": "data:image/jpeg;base64," + b64(_jpeg(k))}}, (64, 48)),
]  # fmt: skip


@pytest.mark.parametrize(
    ("build", "status", "detail", "field"),
    [pytest.param(b, s, d, f, id=i) for i, b, s, d, f in BAD_INPUTS],
)
def test_bad_input_gets_a_4xx_naming_the_problem(
    client: TestClient[Litestar],
    kit: Any,
    build: RequestBuilder,
    status: int,
    detail: str,
    field: str | None,
) -> None:
    req = build(kit)
    headers = {**KEY, **req.pop("headers", {})}
    r = client.post("/api/v1/frame", headers=headers, **req)
    assert r.status_code == status, r.text
    body = r.json()
    assert body["status_code"] == status
    assert detail in body["detail"]
    if field is not None:
        assert body["extra"]["field"] == field
    assert client.get("/health").status_code == 200  # still serving


@pytest.mark.parametrize(
    ("build", "size"), [pytest.param(b, s, id=i) for i, b, s in VALID_ODD_INPUTS]
)
def test_odd_but_valid_images_are_served(
    client: TestClient[Litestar], kit: Any, build: RequestBuilder, size: tuple[int, int]
) -> None:
    req = build(kit)
    headers = {**KEY, **req.pop("headers", {})}
    r = client.post("/api/v1/frame", headers=headers, **req)
    assert r.status_code == 200, r.text
    assert (r.json()["width"], r.json()["height"]) == size


def test_body_above_max_body_mb_is_413(
    make_settings: Callable[..., ServerSettings], kit: Any
) -> None:
    settings = make_settings(deploy__remote__max_body_mb=0.01)
    big = kit.encode(
        np.random.default_rng(0).integers(0, 256, (200, 200, 3), dtype=np.uint8), ".png"
    )
    assert len(big) > 0.01 * 1024 * 1024
    with TestClient(create_app(settings)) as c:
        r = c.post(
            "/api/v1/frame",
            content=big,
            headers={**KEY, "Content-Type": "image/png", "X-Source-Id": "c"},
        )
    assert r.status_code == 413
    assert "deploy.remote.max_body_mb" in r.json()["detail"]


# -- auth -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "detail"),
    [
        ({}, "missing X-API-Key"),
        ({"X-API-Key": ""}, "missing X-API-Key"),
        ({"X-API-Key": "x" * len(API_KEY)}, "wrong X-API-Key"),  # same length
        ({"X-API-Key": "short"}, "wrong X-API-Key"),
        ({"X-API-Key": API_KEY + "-and-more"}, "wrong X-API-Key"),  # a longer key
        ({"X-API-Key": API_KEY.upper()}, "wrong X-API-Key"),
    ],
)
def test_missing_or_wrong_key_is_401(
    client: TestClient[Litestar], kit: Any, headers: dict[str, str], detail: str
) -> None:
    r = client.post(
        "/api/v1/frame",
        json={"source_id": "c", "image_b64": b64(_jpeg(kit))},
        headers=headers,
    )
    assert r.status_code == 401
    assert detail in r.json()["detail"]


def test_key_is_compared_in_constant_time_on_bytes(
    client: TestClient[Litestar], kit: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[object, object]] = []

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return hmac.compare_digest(a, b)

    monkeypatch.setattr(web_auth, "compare_digest", spy)
    for key in ("short", API_KEY):
        client.post(
            "/api/v1/frame",
            json={"source_id": "c", "image_b64": b64(_jpeg(kit))},
            headers={"X-API-Key": key},
        )
    assert [type(a) for a, _ in calls] == [bytes, bytes]
    assert calls[0] == (b"short", API_KEY.encode()) and calls[1] == (API_KEY.encode(),) * 2


def test_no_key_configured_refuses_to_start_unless_anonymous(
    make_settings: Callable[..., ServerSettings], kit: Any
) -> None:
    with pytest.raises(ServerConfigError, match=r"VISION_INGEST_API_KEY.*allow_anonymous"):
        create_app(make_settings(environ={}))
    log_buf = io.StringIO()
    app = create_app(
        make_settings(environ={}, deploy__remote__allow_anonymous=True),
        log=StructuredLogger(None, console=log_buf),
    )
    assert "frame API is OPEN" in log_buf.getvalue()
    with TestClient(app) as c:
        r = c.post("/api/v1/frame", json={"source_id": "c", "image_b64": b64(_jpeg(kit))})
    assert r.status_code == 200


def test_no_model_configured_is_a_clear_error(
    make_settings: Callable[..., ServerSettings], tmp_path: Path
) -> None:
    settings = make_settings()
    empty = ServerSettings(infer=settings.infer.__class__(model_path=""), api_key=settings.api_key)
    with pytest.raises(ServerConfigError, match=r"infer\.model_path is empty"):
        create_app(empty)
    missing = make_settings(model=tmp_path / "nope.onnx")
    with pytest.raises(ServerConfigError, match=r"nope\.onnx does not exist"):
        create_app(missing)


# -- limits ---------------------------------------------------------------------------------------


def test_per_client_rate_limit_is_429_with_retry_after(
    make_settings: Callable[..., ServerSettings], kit: Any
) -> None:
    body = {"source_id": "c", "image_b64": b64(_jpeg(kit))}
    with TestClient(create_app(make_settings(deploy__remote__rate_limit_per_sec=0.5))) as c:
        assert c.post("/api/v1/frame", json=body, headers=KEY).status_code == 200
        r = c.post("/api/v1/frame", json=body, headers=KEY)
        assert r.status_code == 429
        assert int(r.headers["Retry-After"]) >= 1
        assert "deploy.remote.rate_limit_per_sec" in r.json()["detail"]
        assert c.get("/health").status_code == 200  # not rate limited


def test_full_queue_is_503_with_retry_after(
    make_settings: Callable[..., ServerSettings], kit: Any
) -> None:
    app = create_app(make_settings(deploy__remote__queue_size=1))
    body = {"source_id": "c", "image_b64": b64(_jpeg(kit))}
    with TestClient(app) as c:
        runtime = app.state.runtime
        held = runtime.batcher.admit()  # one frame in the queue: it is full
        try:
            r = c.post("/api/v1/frame", json=body, headers=KEY)
        finally:
            held.release()
        assert r.status_code == 503
        assert int(r.headers["Retry-After"]) >= 1
        assert "queue full" in r.json()["detail"]
        assert c.post("/api/v1/frame", json=body, headers=KEY).status_code == 200


# -- answers --------------------------------------------------------------------------------------


def test_json_and_raw_uploads_give_the_same_detections(
    client: TestClient[Litestar], kit: Any
) -> None:
    png = kit.encode(kit.graph_image(TWO_BOXES), ".png")
    by_json = client.post(
        "/api/v1/frame",
        json={"source_id": "cam-7", "frame_index": 42, "image_b64": b64(png)},
        headers=KEY,
    )
    by_raw = client.post(
        "/api/v1/frame?source_id=cam-7&frame_index=42",
        content=png,
        headers={**KEY, "Content-Type": "image/png"},
    )
    assert by_json.status_code == by_raw.status_code == 200
    a, b = by_json.json(), by_raw.json()
    assert a["detections"] == b["detections"]
    assert [(d["class_name"], round(d["score"], 3)) for d in a["detections"]] == [
        ("circle", 0.902),
        ("triangle", 0.6),
    ]
    assert (a["source_id"], a["frame_index"], a["width"], a["height"]) == ("cam-7", 42, 32, 32)
    assert (b["source_id"], b["frame_index"]) == ("cam-7", 42)
    timing = a["timing"]
    assert set(timing) == {"decode_ms", "queue_ms", "inference_ms", "total_ms"}
    assert all(v >= 0 for v in timing.values())
    assert timing["total_ms"] >= timing["inference_ms"]


def test_headers_win_over_query_for_raw_metadata(client: TestClient[Litestar], kit: Any) -> None:
    r = client.post(
        "/api/v1/frame?source_id=from-query&frame_index=1",
        content=_jpeg(kit),
        headers={
            **KEY,
            "Content-Type": "image/jpeg",
            "X-Source-Id": "from-header",
            "X-Frame-Index": "9",
        },
    )
    assert (r.json()["source_id"], r.json()["frame_index"]) == ("from-header", 9)


def test_detections_equal_local_inference(
    make_settings: Callable[..., ServerSettings], tiny_yolo_batch_onnx: Path, kit: Any
) -> None:
    """The server's answer for a frame is vision-core's local inference on the same bytes.

    (Batched frames are compared in test_live.py, against a real uvicorn under load.)
    """
    frames = [kit.encode(kit.scene(200 + 16 * i, 150, seed=i)) for i in range(4)]
    settings = make_settings(model=tiny_yolo_batch_onnx, infer__conf=0.001)
    local = load_detector(tiny_yolo_batch_onnx, conf=0.001)
    total = 0
    with TestClient(create_app(settings)) as c:
        for i, data in enumerate(frames):
            r = c.post(
                "/api/v1/frame",
                json={"source_id": "c", "frame_index": i, "image_b64": b64(data)},
                headers=KEY,
            )
            assert r.status_code == 200, r.text
            image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
            want = [msgspec.to_builtins(d) for d in local.predict(image)]
            got = r.json()["detections"]
            assert got == json.loads(json.dumps(want))  # exactly, through JSON
            total += len(got)
    assert total > 0


def test_health_reports_the_model_and_is_503_before_it_is_loaded(
    make_settings: Callable[..., ServerSettings], graph_model: Path
) -> None:
    app = create_app(make_settings())
    cold = TestClient(app)  # no lifespan: the model is not loaded
    r = cold.get("/health")
    assert r.status_code == 503 and "not loaded" in r.json()["detail"]
    with TestClient(app) as c:
        assert c.get("/health").json() == {"status": "ok"}  # no key: liveness only
        h = c.get("/health", headers=KEY).json()
    assert h["status"] == "ok"
    model = h["model"]
    assert model["path"] == str(graph_model.resolve())
    assert model["sha256"] == hashlib.sha256(graph_model.read_bytes()).hexdigest()
    assert model["classes"] == {"0": "circle", "1": "square", "2": "triangle"}
    assert model["input_size"] == [32, 32]
    assert model["batching"] == "dynamic"
    assert model["provider"] == "CPUExecutionProvider"
    assert h["queue_size"] == 64 and h["max_batch"] == 8 and h["uptime_sec"] >= 0


PROM_LINE = re.compile(r'^(# (HELP|TYPE) \w+ .+|\w+(\{(\w+="[^"]*",?)*\})? -?[\d.e+Inf-]+)$')


def test_metrics_are_prometheus_text(client: TestClient[Litestar], kit: Any) -> None:
    png = kit.encode(kit.graph_image(TWO_BOXES), ".png")
    client.post(
        "/api/v1/frame",
        content=png,
        headers={**KEY, "Content-Type": "image/png", "X-Source-Id": "c"},
    )
    client.post(
        "/api/v1/frame",
        content=b"junk",
        headers={**KEY, "Content-Type": "image/png", "X-Source-Id": "c"},
    )
    client.post("/api/v1/frame", content=png, headers={"Content-Type": "image/png"})
    r = client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = r.text
    for line in text.strip().splitlines():
        assert PROM_LINE.match(line), line
    for want in (
        'vision_server_requests_total{method="POST",route="/api/v1/frame",status="200"} 1',
        'vision_server_requests_total{method="POST",route="/api/v1/frame",status="422"} 1',
        'vision_server_requests_total{method="POST",route="/api/v1/frame",status="401"} 1',
        'vision_server_errors_total{kind="bad_image"} 1',
        'vision_server_errors_total{kind="unauthorized"} 1',
        "vision_server_batch_size_count 1",
        'vision_server_request_duration_seconds_bucket{le="+Inf",route="/api/v1/frame"} 3',
        'vision_server_frame_stage_seconds_count{stage="inference"} 1',
        "vision_server_queue_depth 0",
        "vision_server_queue_capacity 64",
        "vision_server_frames_total 1",
        "vision_server_stats_outbox_pending 1",
        "# TYPE vision_server_request_duration_seconds histogram",
    ):
        assert want in text, want


def test_openapi_documents_both_encodings_and_the_key(client: TestClient[Litestar]) -> None:
    schema = client.get("/schema/openapi.json").json()
    op = schema["paths"]["/api/v1/frame"]["post"]
    content = op["requestBody"]["content"]
    assert set(content) == {"application/json", "image/jpeg", "image/png"}
    assert content["application/json"]["schema"]["$ref"].endswith("/FrameRequest")
    assert {p["name"] for p in op["parameters"]} >= {"source_id", "X-Source-Id", "X-Frame-Index"}
    assert op["security"] == [{"ApiKey": []}]
    assert schema["components"]["securitySchemes"]["ApiKey"]["name"] == "X-API-Key"
    assert {"200", "400", "401", "413", "415", "422", "429", "431", "500", "503"} <= set(
        op["responses"]
    )
    error = op["responses"]["422"]["content"]["application/json"]["schema"]["$ref"]
    assert error.endswith("/ErrorBody")
    frame = schema["components"]["schemas"]["FrameRequest"]["properties"]
    assert frame["image_b64"]["contentEncoding"] == "base64"
    assert frame["ts_utc"]["oneOf"][0]["format"] == "date-time" or "date-time" in str(
        frame["ts_utc"]
    )
    assert frame["frame_index"]["maximum"] == 2**53 - 1
    assert "pattern" in frame["source_id"] and frame["source_id"]["maxLength"] == 200
    assert "/health" in schema["paths"] and "/metrics" in schema["paths"]


# -- stats -----------------------------------------------------------------------------------------


def test_one_stream_event_per_frame_reaches_the_stats_endpoint(
    make_settings: Callable[..., ServerSettings], fake_stats: Any, kit: Any
) -> None:
    settings = make_settings(deploy__stats__endpoint=fake_stats.url)
    png = kit.encode(kit.graph_image(TWO_BOXES), ".png")
    with TestClient(create_app(settings)) as c:
        for i in range(5):
            r = c.post(
                "/api/v1/frame",
                json={"source_id": "edge-9", "frame_index": i, "image_b64": b64(png)},
                headers=KEY,
            )
            assert r.status_code == 200
        c.post(
            "/api/v1/frame",
            content=b"junk",
            headers={**KEY, "Content-Type": "image/png", "X-Source-Id": "x"},
        )
        assert fake_stats.wait_for(5)
    events = sorted(fake_stats.events.values(), key=lambda e: e["frame_index"])
    assert len(events) == 5  # one per answered frame, none for the 422
    for i, e in enumerate(events):
        assert (e["source_id"], e["mode"], e["frame_index"]) == ("edge-9", "stream", i)
        assert e["detections_total"] == 2
        assert e["counts_by_class"] == {"circle": 1, "triangle": 1}
        assert e["model"].startswith("graph.onnx@") and e["latency_ms"] > 0


def test_a_frame_sent_twice_with_a_timestamp_counts_once(
    make_settings: Callable[..., ServerSettings], fake_stats: Any, kit: Any
) -> None:
    settings = make_settings(deploy__stats__endpoint=fake_stats.url)
    body = {
        "source_id": "edge-1",
        "frame_index": 3,
        "ts_utc": "2024-05-01T12:00:00Z",
        "image_b64": b64(_jpeg(kit)),
    }
    with TestClient(create_app(settings)) as c:
        assert c.post("/api/v1/frame", json=body, headers=KEY).status_code == 200
        assert c.post("/api/v1/frame", json=body, headers=KEY).status_code == 200  # an edge retry
        assert fake_stats.wait_for(1)
        time.sleep(0.3)
    (event,) = fake_stats.events.values()
    assert event["ts_utc"].startswith("2024-05-01T12:00:00")


def test_a_stats_outage_neither_slows_nor_fails_frames_and_loses_nothing(
    make_settings: Callable[..., ServerSettings], fake_stats: Any, kit: Any
) -> None:
    fake_stats.fail_with = 503
    settings = make_settings(
        deploy__stats__endpoint=fake_stats.url, deploy__stats__max_backoff_sec=0.2
    )
    png = kit.encode(kit.graph_image(TWO_BOXES), ".png")
    app = create_app(settings)
    with TestClient(app) as c:
        slowest = 0.0
        for i in range(20):
            t0 = time.perf_counter()
            r = c.post(
                "/api/v1/frame",
                json={"source_id": "e", "frame_index": i, "image_b64": b64(png)},
                headers=KEY,
            )
            slowest = max(slowest, time.perf_counter() - t0)
            assert r.status_code == 200
        assert slowest < 0.5
        assert fake_stats.arrived.wait(5)  # the sender tried
        assert fake_stats.posts >= 1 and not fake_stats.events

        def health_stats() -> dict[str, Any]:
            return dict(c.get("/health", headers=KEY).json()["stats"])

        # the 503 is on record once the sender has read the answer (after the post arrived)
        wait_for(lambda: "503" in (health_stats()["last_error"] or ""), 10, "the 503 on /health")
        assert health_stats()["pending"] == 20
        fake_stats.fail_with = None  # the service is back
        assert fake_stats.wait_for(20)


def test_record_stats_off_writes_no_outbox(
    make_settings: Callable[..., ServerSettings], kit: Any
) -> None:
    settings = make_settings(deploy__remote__record_stats=False)
    with TestClient(create_app(settings)) as c:
        r = c.post(
            "/api/v1/frame",
            content=_jpeg(kit),
            headers={**KEY, "Content-Type": "image/jpeg", "X-Source-Id": "c"},
        )
        assert r.status_code == 200
        assert c.get("/health", headers=KEY).json().get("stats") is None
    assert not list((settings.workdir / "outbox").glob("*.db"))


def test_undelivered_events_stay_in_the_outbox_for_the_next_start(
    make_settings: Callable[..., ServerSettings], kit: Any
) -> None:
    settings = make_settings()  # endpoint empty: kept locally
    with TestClient(create_app(settings)) as c:
        for i in range(3):
            c.post(
                "/api/v1/frame",
                content=_jpeg(kit),
                headers={
                    **KEY,
                    "Content-Type": "image/jpeg",
                    "X-Source-Id": "c",
                    "X-Frame-Index": str(i),
                },
            )
    db = settings.workdir / "outbox" / "server-0.db"
    with sqlite3.connect(db) as conn:
        rows = [json.loads(p) for (p,) in conn.execute("SELECT payload FROM events ORDER BY id")]
    assert [r["frame_index"] for r in rows] == [0, 1, 2]
    assert {r["mode"] for r in rows} == {"stream"}
