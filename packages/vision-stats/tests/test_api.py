"""The HTTP API through litestar.testing, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest
from litestar.testing import TestClient

from vision_core.secrets import Secret
from vision_core.types import StatsEvent
from vision_stats.api import create_app
from vision_stats.errors import AuthConfigError
from vision_stats.settings import StatsSettings
from vision_stats.store import LATEST_VERSION

KEY = "api-test-key-42"
AUTH = {"X-API-Key": KEY}
URL = "/api/v1/stats/events"


def _json(ev: StatsEvent) -> dict[str, Any]:
    return json.loads(msgspec.json.encode(ev))


@pytest.fixture
def client(db_url: str) -> Iterator[TestClient[Any]]:
    settings = StatsSettings(db=db_url, api_key=Secret(KEY, "K"), max_body_mb=8, max_batch=500)
    with TestClient(create_app(settings)) as c:
        yield c


@pytest.fixture(scope="module")
def shared_client(module_db_url: str) -> Iterator[TestClient[Any]]:
    """One app per engine for the tests that only check what is NOT stored."""
    settings = StatsSettings(
        db=module_db_url, api_key=Secret(KEY, "K"), max_body_mb=8, max_batch=500
    )
    with TestClient(create_app(settings)) as c:
        yield c


def _total(client: TestClient[Any]) -> int:
    return int(client.get("/api/v1/stats/overview").json()["events_total"])


def test_post_one_event_then_a_list(client: TestClient[Any], make_event) -> None:
    r = client.post(URL, json=_json(make_event(1)), headers=AUTH)
    assert r.status_code == 200
    assert r.json() == {
        "received": 1, "stored": 1, "duplicates": 0,
        "stored_ids": [make_event(1).event_id], "duplicate_ids": [],
    }  # fmt: skip
    r = client.post(URL, json=[_json(make_event(i)) for i in range(1, 4)], headers=AUTH)
    assert r.status_code == 200
    body = r.json()
    assert body["stored_ids"] == [make_event(2).event_id, make_event(3).event_id]
    assert body["duplicate_ids"] == [make_event(1).event_id]
    assert _total(client) == 3


def test_the_same_batch_posted_twice_counts_once(client: TestClient[Any], make_event) -> None:
    batch = [_json(make_event(i)) for i in range(50)]
    first = client.post(URL, json=batch, headers=AUTH).json()
    second = client.post(URL, json=batch, headers=AUTH).json()
    assert (first["stored"], first["duplicates"]) == (50, 0)
    assert (second["stored"], second["duplicates"]) == (0, 50)
    ov = client.get("/api/v1/stats/overview").json()
    assert ov["events_total"] == 50
    assert ov["detections_total"] == sum(make_event(i).detections_total for i in range(50))


def _good(make_event) -> dict[str, Any]:
    return _json(make_event(1))


BAD_BODIES = [
    # (name, body bytes builder, status, words the answer must contain)
    ("malformed json", lambda ev: b'{"event_id": "a", ', 400, ["not valid JSON"]),
    ("not json at all", lambda ev: b"hello", 400, ["not valid JSON"]),
    ("empty body", lambda ev: b"", 400, ["not valid JSON"]),
    ("a number", lambda ev: b"5", 422, ["Expected `object | array`"]),
    (
        "wrong type",
        lambda ev: {**ev, "frame_index": "seven"},
        422,
        ["$.frame_index", "Expected `int`"],
    ),
    ("negative latency", lambda ev: {**ev, "latency_ms": -3.5}, 422, ["$.latency_ms", ">= 0.0"]),
    (
        "negative count",
        lambda ev: {**ev, "counts_by_class": {"car": -1}},
        422,
        ["$.counts_by_class"],
    ),
    ("unknown field", lambda ev: {**ev, "colour": "red"}, 422, ["unknown field `colour`"]),
    (
        "missing field",
        lambda ev: {k: v for k, v in ev.items() if k != "source_id"},
        422,
        ["missing required field `source_id`"],
    ),
    (
        "naive timestamp",
        lambda ev: {**ev, "ts_utc": "2024-05-01T12:00:00"},
        422,
        ["$.ts_utc", "timezone"],
    ),
    ("empty event id", lambda ev: {**ev, "event_id": ""}, 422, ["$.event_id"]),
    (
        "bad event second in a batch",
        lambda ev: [ev, {**ev, "event_id": "x2", "latency_ms": -1}],
        422,
        ["$[1].latency_ms"],
    ),
    ("empty list", lambda ev: [], 422, ["empty list"]),
    (
        "too many events",
        lambda ev: [{**ev, "event_id": f"e{i}"} for i in range(501)],
        422,
        ["501 events", "more than 500"],
    ),
]


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [pytest.param(b, s, w, id=name) for name, b, s, w in BAD_BODIES],
)
def test_bad_input_is_4xx_with_a_clear_body_and_nothing_stored(
    shared_client: TestClient[Any], make_event, body: Any, status: int, words: list[str]
) -> None:
    client = shared_client
    before = _total(client)
    payload = body(_good(make_event))
    content = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    r = client.post(URL, content=content, headers={**AUTH, "Content-Type": "application/json"})
    assert r.status_code == status, r.text
    answer = r.json()
    assert answer["status_code"] == status
    for word in words:
        assert word in answer["detail"]
    assert answer["extra"]["stored"] == 0
    assert _total(client) == before


def test_a_50_mb_body_is_refused_with_413(shared_client: TestClient[Any]) -> None:
    before = _total(shared_client)
    r = shared_client.post(URL, content=b"[" + b" " * (50 * 1024 * 1024) + b"]", headers=AUTH)
    assert r.status_code == 413
    assert "larger than 8 MB (stats.max_body_mb)" in r.json()["detail"]
    assert _total(shared_client) == before


@pytest.mark.parametrize(
    ("headers", "detail"),
    [({}, "missing X-API-Key header"), ({"X-API-Key": "wrong-key"}, "wrong X-API-Key header")],
)
def test_ingest_without_the_key_is_401(
    shared_client: TestClient[Any], make_event, headers: dict[str, str], detail: str
) -> None:
    before = _total(shared_client)
    r = shared_client.post(URL, json=_json(make_event(1)), headers=headers)
    assert r.status_code == 401
    assert r.json()["detail"] == detail
    assert _total(shared_client) == before


def test_no_key_refuses_to_start_unless_anonymous_is_allowed(tmp_path, make_event) -> None:
    with pytest.raises(AuthConfigError, match=r"VISION_STATS_API_KEY.*allow_anonymous"):
        create_app(StatsSettings(db=str(tmp_path / "a.db")))
    settings = StatsSettings(db=str(tmp_path / "a.db"), allow_anonymous=True)
    with TestClient(create_app(settings)) as c:
        assert c.post(URL, json=_json(make_event(1))).status_code == 200


def test_query_endpoints_answer_with_the_stored_figures(
    client: TestClient[Any], make_event
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    events = [
        make_event(i, source=f"cam-{i % 2}", ts=now - timedelta(seconds=30 * i), latency=float(i))
        for i in range(10)
    ]
    client.post(URL, json=[_json(e) for e in events], headers=AUTH)
    ov = client.get("/api/v1/stats/overview").json()
    assert (ov["events_total"], ov["source_count"]) == (10, 2)
    assert ov["avg_latency_ms"] == pytest.approx(4.5)
    recent = client.get("/api/v1/stats/recent", params={"limit": 3, "source": "cam-0"}).json()
    assert [e["event_id"] for e in recent] == [events[i].event_id for i in (0, 2, 4)]
    classes = client.get("/api/v1/stats/classes", params={"limit": 2}).json()
    assert len(classes) == 2 and classes[0]["detections"] >= classes[1]["detections"]
    series = client.get("/api/v1/stats/series", params={"bucket": "minute", "since": "10m"}).json()
    assert sum(b["events"] for b in series["buckets"]) == 10
    sources = client.get("/api/v1/stats/sources").json()
    assert [s["source_id"] for s in sources] == ["cam-1", "cam-0"]
    recent_window = client.get("/api/v1/stats/overview", params={"since": "100s"}).json()
    assert recent_window["events_total"] == 4  # 0, 30, 60, 90 s ago
    health = client.get("/api/v1/stats/health", headers=AUTH).json()
    assert health["status"] == "ok" and health["schema_version"] == LATEST_VERSION
    assert client.get("/api/v1/stats/health").json() == {"status": "ok"}  # no key: liveness


@pytest.mark.parametrize(
    ("path", "params", "words"),
    [
        ("/overview", {"since": "yesterday-ish"}, "since: expected an ISO 8601 time"),
        ("/recent", {"limit": "0"}, "Validation failed"),
        ("/recent", {"limit": "many"}, "Validation failed"),
        ("/series", {"bucket": "day"}, "Validation failed"),
        ("/series", {"since": "90d", "bucket": "minute"}, "more than 1500"),
        ("/classes", {"since": "1h", "until": "2h"}, "must be before until"),
        ("/track/counts", {"bucket": "week"}, "Validation failed"),
        ("/track/counts", {"since": "last tuesday"}, "since: expected an ISO 8601 time"),
        ("/track/counts", {"bucket": "minute", "since": "30d"}, "more than 1500"),
        ("/track/counts", {"since": "1h", "until": "2h"}, "must be before until"),
        ("/track/counts", {"line": "gate\x1b[2J"}, "Validation failed"),
        ("/track/counts", {"line": ""}, "Validation failed"),
        ("/track/occupancy", {"zone": "z" * 201}, "Validation failed"),
        ("/track/occupancy/series", {"bucket": "day", "since": "3650d"}, "more than 1500"),
        ("/track/dwell", {"until": "9999-12-31T23:59:59-05:00"}, "until: "),
        ("/track/summaries", {"source": "cam\u202e"}, "Validation failed"),
    ],
)
def test_bad_query_parameters_are_400_naming_them(
    shared_client: TestClient[Any], path: str, params: dict[str, str], words: str
) -> None:
    r = shared_client.get("/api/v1/stats" + path, params=params)
    assert r.status_code == 400, r.text
    assert words in r.text


def test_openapi_schema_describes_the_event_model(shared_client: TestClient[Any]) -> None:
    schema = shared_client.get("/schema/openapi.json").json()
    assert set(schema["paths"]) >= {
        "/api/v1/stats/events", "/api/v1/stats/recent", "/api/v1/stats/overview",
        "/api/v1/stats/classes", "/api/v1/stats/series", "/api/v1/stats/sources",
        "/api/v1/stats/health",
    }  # fmt: skip
    event = schema["components"]["schemas"]["StatsEvent"]
    assert event["properties"]["latency_ms"]["minimum"] == 0
    assert event["properties"]["latency_ms"]["maximum"] == 86_400_000
    assert event["properties"]["ts_utc"]["format"] == "date-time"
    assert event["properties"]["frame_index"]["maximum"] == 2**53 - 1
    assert event["properties"]["source_id"]["maxLength"] == 200
    assert "pattern" in event["properties"]["source_id"]
    assert "event_id" in event["required"]
    ingest = schema["paths"]["/api/v1/stats/events"]["post"]
    assert {"200", "400", "401", "413", "422", "431", "500", "503"} <= set(ingest["responses"])
    assert ingest["security"] == [{"ApiKey": []}]
    body = ingest["requestBody"]["content"]["application/json"]["schema"]["oneOf"][1]
    assert (body["minItems"], body["maxItems"]) == (1, 10_000)
    overview = schema["paths"]["/api/v1/stats/overview"]["get"]
    assert {"200", "400", "431", "500", "503"} <= set(overview["responses"])
    assert "/metrics" in schema["paths"]


def test_dashboard_page_and_its_files_are_served_locally(client: TestClient[Any]) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert 'data-refresh-sec="5"' in page.text
    assert "http://" not in page.text and "https://" not in page.text  # no CDN
    for name in ("app.js", "style.css"):
        r = client.get(f"/static/{name}")
        assert r.status_code == 200
        assert "https://" not in r.text
