"""Hardening of vision-stats (issue #13): short error bodies with a request id (details and
traceback in the log), a stale PostgreSQL connection retried, the 431 header cap, /metrics,
and terminal-safe CLI output."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from litestar.testing import TestClient
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from vision_core.logging import StructuredLogger, read_jsonl
from vision_core.secrets import Secret
from vision_core.types import StatsEvent
from vision_stats.api import create_app
from vision_stats.settings import StatsSettings
from vision_stats.store import open_store

KEY = "hardening-key-0123456789"
AUTH = {"X-API-Key": KEY}
EXE = str(Path(sys.executable).parent / "vision-stats")


def _event(i: int, source: str = "cam-h") -> dict[str, Any]:
    return {
        "event_id": f"h-{uuid.uuid4().hex}", "ts_utc": datetime.now(UTC).isoformat(),
        "source_id": source, "mode": "local", "frame_index": i, "latency_ms": 1.0,
        "detections_total": 1, "counts_by_class": {"car": 1},
    }  # fmt: skip


def _with(dsn: str, **extra: str) -> str:
    return make_conninfo(dsn, **extra)


def test_a_5xx_body_is_short_and_generic_and_the_log_has_the_rest(
    pg_dsn: str, tmp_path: Path
) -> None:
    """A database error (a table dropped under the service): the answer names no DSN, SQL
    or path; its request id leads to the log line with the traceback."""
    password = "s3cret-pw-in-the-dsn"
    dsn = _with(pg_dsn, password=password)  # trust auth: the password is not checked
    log_path = tmp_path / "stats.jsonl"
    log = StructuredLogger(log_path, "INFO")
    settings = StatsSettings(db=dsn, api_key=Secret(KEY, "K"))
    with TestClient(create_app(settings, log=log)) as client:
        assert client.get("/api/v1/stats/overview").status_code == 200
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute("DROP TABLE source_totals")
        for path in ("/api/v1/stats/overview", "/api/v1/stats/sources"):
            r = client.get(path)
            assert r.status_code == 500
            body = r.json()
            assert set(body) == {"status_code", "detail", "request_id"}
            assert body["request_id"] == r.headers["x-request-id"]
            for leak in (password, "source_totals", "SELECT", "postgresql", "host=", "/", "line"):
                assert leak not in r.text.replace("/api/v1", ""), (leak, r.text)
            lines = [
                ln for ln in read_jsonl(log_path) if ln.get("request_id") == body["request_id"]
            ]
            assert len(lines) == 1 and lines[0]["level"] == "ERROR", lines
            assert "source_totals" in lines[0]["traceback"] and "Traceback" in lines[0]["traceback"]
            assert password not in log_path.read_text()
    log.close()


def test_a_terminated_postgresql_connection_is_retried_not_a_503(pg_dsn: str) -> None:
    app_name = f"vision-stale-{uuid.uuid4().hex[:8]}"
    dsn = _with(pg_dsn, application_name=app_name)
    settings = StatsSettings(db=dsn, api_key=Secret(KEY, "K"))
    with TestClient(create_app(settings)) as client:
        for i in range(3):  # a few pooled connections
            assert (
                client.post("/api/v1/stats/events", json=_event(i), headers=AUTH).status_code == 200
            )
        with psycopg.connect(pg_dsn, autocommit=True) as admin:
            killed = admin.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE application_name = %s",
                (app_name,),
            ).fetchone()
        assert killed is not None and killed[0] >= 1
        for path in ("/api/v1/stats/health", "/api/v1/stats/overview", "/api/v1/stats/sources"):
            r = client.get(path)
            assert r.status_code == 200, (path, r.text)
        r = client.post("/api/v1/stats/events", json=_event(9), headers=AUTH)
        assert r.status_code == 200 and r.json()["stored"] == 1
        assert client.get("/api/v1/stats/overview").json()["events_total"] == 4
    assert conninfo_to_dict(dsn)["application_name"] == app_name


def test_a_database_that_stays_down_is_a_503_with_retry_after(tmp_path: Path) -> None:
    settings = StatsSettings(db=str(tmp_path / "s.db"), api_key=Secret(KEY, "K"))
    app = create_app(settings)
    with TestClient(app) as client:
        store = app.state.store
        app.state.store = None  # as while the store is closing
        r = client.get("/api/v1/stats/overview")
        app.state.store = store
    assert r.status_code == 503 and r.headers["retry-after"] == "5"
    assert r.json()["detail"] == "the statistics database did not answer; retry later"


def test_headers_over_16_kib_in_all_are_431_on_a_real_server(live_server: Any) -> None:
    for path in ("/api/v1/stats/overview", "/no/such/path"):
        r = httpx.get(live_server.url + path, headers={"X-Pad": "p" * 20_000}, timeout=10)
        assert r.status_code == 431, r.text
        assert r.json()["status_code"] == 431 and "16 KiB" in r.json()["detail"]
        # many small headers add up too
        many = {f"X-Pad-{i}": "p" * 100 for i in range(200)}
        assert httpx.get(live_server.url + path, headers=many, timeout=10).status_code == 431
    ok = httpx.get(f"{live_server.url}/api/v1/stats/overview", headers={"X-Pad": "p" * 8_000})
    assert ok.status_code == 200


def test_metrics_show_requests_and_events(live_server: Any) -> None:
    r = httpx.post(
        f"{live_server.url}/api/v1/stats/events",
        json=_event(1, "cam-m"),
        headers=live_server.headers,
    )
    assert r.status_code == 200
    httpx.post(f"{live_server.url}/api/v1/stats/events", json={"x": 1}, headers=live_server.headers)
    text = httpx.get(f"{live_server.url}/metrics").text
    for want in (
        'vision_stats_events_total{outcome="stored"}',
        'vision_stats_events_total{outcome="rejected"}',
        'vision_stats_requests_total{method="POST",route="/api/v1/stats/events",status="200"}',
        'vision_stats_errors_total{kind="invalid_field"}',
        'vision_stats_info{engine="sqlite"',
        "# TYPE vision_stats_request_duration_seconds histogram",
    ):
        assert want in text, want


HOSTILE = ("cam\x1b]0;pwned\x07", "cam\x1b[2J", "cam\x1b[31mred", "cam\u202eevil", "cam\x9b2J")
RAW = ("\x1b", "\x07", "\x9b", "\u202e")


@pytest.fixture
def hostile_db(tmp_path: Path) -> Iterator[str]:
    """Source ids the API now refuses, written by an older sender (straight into the store)."""
    db = str(tmp_path / "hostile.db")
    with open_store(db) as store:
        store.insert(
            [
                StatsEvent(
                    event_id=f"e{i}",
                    ts_utc=datetime.now(UTC),
                    source_id=src,
                    mode="local",
                    frame_index=i,
                    latency_ms=1.0,
                    detections_total=1,
                    counts_by_class={f"class\x1b[1m{i}": 1},
                    model="m\x1b]8;;x\x07",
                )
                for i, src in enumerate(HOSTILE)
            ]
        )
    yield db


@pytest.mark.parametrize("command", ["recent", "sources", "classes"])
def test_cli_output_escapes_terminal_controls_in_a_pipe_and_as_json(
    hostile_db: str, command: str
) -> None:
    table = subprocess.run(
        [EXE, command, "--db", hostile_db], capture_output=True, text=True, check=True
    ).stdout  # a pipe, not a terminal: escaped all the same
    for raw in RAW:
        assert raw not in table, (command, raw, table)
    if command != "classes":
        assert "cam\\e]0;pwned\\x07" in table and "cam\\e[2J" in table and "cam\\u202eevil" in table
    out = subprocess.run(
        [EXE, command, "--db", hostile_db, "--json"], capture_output=True, text=True, check=True
    ).stdout
    for raw in RAW:
        assert raw not in out, (command, raw)
    parsed = json.loads(out)
    if command != "classes":  # the JSON still carries the exact values
        key = "source_id"
        assert sorted(row[key] for row in parsed) == sorted(HOSTILE)
