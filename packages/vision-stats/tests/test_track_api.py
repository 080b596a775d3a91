"""Tracking events over HTTP (litestar.testing, SQLite and PostgreSQL) and the `counts` and
`zones` commands."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest
from click.testing import CliRunner
from litestar.testing import TestClient

from vision_core.secrets import Secret
from vision_stats.api import create_app
from vision_stats.cli import main
from vision_stats.settings import StatsSettings
from vision_stats.store import LATEST_VERSION, open_store

from .conftest import crossing, summary, zone_event

KEY = "track-api-key-0123456789"
AUTH = {"X-API-Key": KEY}
URL = "/api/v1/stats/track-events"
H10 = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
H11, H12 = H10 + timedelta(hours=1), H10 + timedelta(hours=2)
MIN = timedelta(minutes=1)
RANGE = {"since": H10.isoformat(), "until": H12.isoformat()}


def _wire(events: list[Any]) -> list[Any]:
    return json.loads(msgspec.json.encode(events))


def _gate() -> list[Any]:
    """7 cars in and 3 out on gate in hour 10, 2 in during hour 11; a lobby with 3 people
    in, one out and one lost; a summary: the issue's example, as one mixed batch."""
    return (
        [crossing(H10 + i * 5 * MIN, "in") for i in range(7)]
        + [crossing(H10 + (40 + i) * MIN, "out") for i in range(3)]
        + [crossing(H11 + 10 * MIN, "in"), crossing(H11 + 20 * MIN, "in")]
        + [zone_event(H10 + i * MIN, "enter", occupancy=i + 1) for i in range(3)]
        + [zone_event(H10 + 30 * MIN, "exit", dwell=1740.0, occupancy=2)]
        + [zone_event(H11 + 30 * MIN, "exit", dwell=5340.0, occupancy=1, lost=True)]
        + [summary(H10, detections={"car": 40}, tracks={"car": 7}, new_tracks={"car": 7})]
    )


@pytest.fixture
def client(db_url: str) -> Iterator[TestClient[Any]]:
    settings = StatsSettings(db=db_url, api_key=Secret(KEY, "K"), max_batch=500)
    with TestClient(create_app(settings)) as c:
        yield c


def test_a_mixed_batch_is_stored_once_and_read_back_by_every_endpoint(
    client: TestClient[Any],
) -> None:
    batch = _wire(_gate())
    first = client.post(URL, json=batch, headers=AUTH)
    assert first.status_code == 200, first.text
    assert {k: first.json()[k] for k in ("received", "stored", "duplicates")} == {
        "received": 18, "stored": 18, "duplicates": 0,
    }  # fmt: skip
    again = client.post(URL, json=batch, headers=AUTH).json()
    assert (again["stored"], again["duplicates"]) == (0, 18)
    assert again["duplicate_ids"] == [e["event_id"] for e in batch]

    counts = client.get("/api/v1/stats/track/counts", params=RANGE).json()
    assert counts["rows"] == [
        {"ts_utc": "2024-05-01T10:00:00Z", "line": "gate", "class_name": "car", "in": 7, "out": 3},
        {"ts_utc": "2024-05-01T11:00:00Z", "line": "gate", "class_name": "car", "in": 2, "out": 0},
    ]
    assert counts["totals"] == [{"line": "gate", "class_name": "car", "in": 9, "out": 3}]
    (lobby,) = client.get("/api/v1/stats/track/occupancy").json()
    assert (lobby["zone"], lobby["occupancy"], lobby["by_class"]) == ("lobby", 1, {"person": 1})
    assert (lobby["enters"], lobby["exits"], lobby["lost_exits"]) == (3, 2, 1)
    assert (lobby["reported_occupancy"], lobby["last_event_utc"]) == (1, "2024-05-01T11:30:00Z")
    series = client.get("/api/v1/stats/track/occupancy/series", params=RANGE).json()
    assert series["buckets"] == ["2024-05-01T10:00:00Z", "2024-05-01T11:00:00Z"]
    (person,) = series["zones"]
    assert (person["occupancy"], person["enters"], person["exits"]) == ([2, 1], [3, 0], [1, 1])
    (dwell,) = client.get("/api/v1/stats/track/dwell", params=RANGE).json()
    assert dwell == {
        "zone": "lobby", "class_name": "person", "exits": 2, "lost_exits": 1,
        "mean_sec": 3540.0, "p50_sec": 1740.0, "p95_sec": 5340.0, "max_sec": 5340.0,
    }  # fmt: skip
    summaries = client.get("/api/v1/stats/track/summaries", params=RANGE).json()
    assert summaries["buckets"][0]["new_tracks_by_class"] == {"car": 7}
    assert summaries["buckets"][1]["intervals"] == 0
    health = client.get("/api/v1/stats/health", headers=AUTH).json()
    assert health["schema_version"] == LATEST_VERSION == 3
    metrics = client.get("/metrics").text
    for want in (
        'vision_stats_track_events_total{kind="crossing",outcome="stored"} 12.0',
        'vision_stats_track_events_total{kind="zone",outcome="stored"} 5.0',
        'vision_stats_track_events_total{kind="summary",outcome="stored"} 1.0',
        'vision_stats_track_events_total{kind="crossing",outcome="duplicate"} 12.0',
    ):
        assert want in metrics, want
    client.post(URL, json=[{"kind": "nope"}], headers=AUTH)
    metrics = client.get("/metrics").text
    assert 'vision_stats_track_events_total{kind="unknown",outcome="rejected"} 1.0' in metrics


def test_ingest_needs_the_key_and_keeps_to_the_body_and_batch_caps(
    client: TestClient[Any],
) -> None:
    one = _wire([crossing(H10, "in")])
    for headers in ({}, {"X-API-Key": "wrong"}):
        assert client.post(URL, json=one, headers=headers).status_code == 401
    big = client.post(URL, content=b"[" + b" " * (9 * 1024 * 1024) + b"]", headers=AUTH)
    assert big.status_code == 413
    many = client.post(URL, json=_wire([crossing(H10) for _ in range(501)]), headers=AUTH)
    assert many.status_code == 422 and "501 events in one request, more than 500" in many.text
    totals = client.get("/api/v1/stats/track/counts", params=RANGE).json()["totals"]
    assert totals == []


def test_openapi_documents_every_tracking_parameter_status_and_bound(
    client: TestClient[Any],
) -> None:
    schema = client.get("/schema/openapi.json").json()
    ingest = schema["paths"][URL]["post"]
    assert {"200", "400", "401", "413", "422", "431", "500", "503"} <= set(ingest["responses"])
    assert ingest["security"] == [{"ApiKey": []}]
    body = ingest["requestBody"]["content"]["application/json"]["schema"]
    assert (body["type"], body["minItems"], body["maxItems"]) == ("array", 1, 10_000)
    kinds = {ref["$ref"].rsplit("/", 1)[1] for ref in body["items"]["oneOf"]}
    assert kinds == {"CrossingEvent", "ZoneEvent", "IntervalSummary"}
    crossing_schema = schema["components"]["schemas"]["CrossingEvent"]["properties"]
    assert crossing_schema["direction"]["enum"] == ["in", "out"]
    assert crossing_schema["track_id"]["maximum"] == 2**53 - 1
    expected = {
        "/api/v1/stats/track/counts": {"bucket", "source", "line", "since", "until"},
        "/api/v1/stats/track/occupancy": {"source", "zone"},
        "/api/v1/stats/track/occupancy/series": {"bucket", "source", "zone", "since", "until"},
        "/api/v1/stats/track/dwell": {"source", "zone", "since", "until"},
        "/api/v1/stats/track/summaries": {"bucket", "source", "since", "until"},
    }
    for path, params in expected.items():
        op = schema["paths"][path]["get"]
        assert {p["name"] for p in op["parameters"]} == params, path
        assert all(p.get("description") for p in op["parameters"]), path
        assert {"200", "400", "431", "500", "503"} <= set(op["responses"]), path
    counts = schema["paths"]["/api/v1/stats/track/counts"]["get"]["parameters"]
    bucket = next(p for p in counts if p["name"] == "bucket")["schema"]
    assert bucket["enum"] == ["minute", "hour", "day"] and bucket["default"] == "hour"
    line = next(p for p in counts if p["name"] == "line")["schema"]
    assert (line["minLength"], line["maxLength"]) == (1, 200) and "pattern" in line
    row = schema["components"]["schemas"]["CountRow"]["properties"]
    assert set(row) == {"ts_utc", "line", "class_name", "in", "out"}


# -- the commands ------------------------------------------------------------------------


@pytest.fixture
def tracked(db_url: str) -> str:
    with open_store(db_url) as store:
        store.insert_track_events(_gate())
    return db_url


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_counts_prints_a_table_per_bucket_and_the_totals(tracked: str) -> None:
    code, out, err = run("counts", "--db", tracked, "--since", RANGE["since"],
                         "--until", RANGE["until"])  # fmt: skip
    assert code == 0, err
    assert "crossings per hour, 2024-05-01 10:00 to 2024-05-01 12:00 (UTC)" in out
    assert re.search(r"^2024-05-01 10:00 +gate +car +7 +3 +10$", out, re.M), out
    assert re.search(r"^2024-05-01 11:00 +gate +car +2 +0 +2$", out, re.M), out
    assert re.search(r"^gate +car +9 +3 +12$", out, re.M), out
    code, out, _ = run("counts", "--db", tracked, "--since", RANGE["since"], "--until",
                       RANGE["until"], "--bucket", "day", "--json")  # fmt: skip
    assert code == 0
    assert json.loads(out)["rows"] == [
        {"ts_utc": "2024-05-01T00:00:00Z", "line": "gate", "class_name": "car", "in": 9, "out": 3}
    ]
    code, out, _ = run("counts", "--db", tracked, "--line", "nowhere", "--since", "1000d",
                       "--bucket", "day")  # fmt: skip
    assert code == 0 and out.startswith("no crossings from")
    code, _, err = run("counts", "--db", tracked, "--bucket", "minute", "--since", "30d")
    assert code == 2 and "more than 1500" in err


def test_zones_prints_occupancy_now_and_dwell(tracked: str) -> None:
    code, out, err = run("zones", "--db", tracked, "--since", RANGE["since"],
                         "--until", RANGE["until"])  # fmt: skip
    assert code == 0, err
    assert re.search(r"^cam-01 +lobby +1 +person 1 +3 +2 +1 +1 +2024-05-01 11:30:00$", out, re.M)
    assert re.search(r"^lobby +person +2 +1 +3,540.0 +1,740.0 +5,340.0 +5,340.0$", out, re.M)
    report = json.loads(run("zones", "--db", tracked, "--since", RANGE["since"], "--json")[1])
    assert report["occupancy"][0]["by_class"] == {"person": 1}
    assert report["dwell"][0]["p95_sec"] == 5340.0
    code, out, _ = run("zones", "--db", tracked, "--zone", "nowhere")
    assert code == 0 and "no zone events" in out and "no zone exits" in out


HOSTILE = "gate\x1b]0;pwned\x07"
RAW = ("\x1b", "\x07", "\x9b", "\u202e")


def test_counts_and_zones_escape_terminal_controls(tmp_path: Path) -> None:
    """Names the API now refuses, written by an older sender straight into the store."""
    db = str(tmp_path / "hostile.db")
    with open_store(db) as store:
        store.insert_track_events(
            [
                crossing(H10, "in", line=HOSTILE, cls="car\x9b2J"),
                zone_event(H10, "enter", zone="lobby\u202eevil", source="cam\x1b[2J"),
                zone_event(
                    H10 + MIN, "exit", zone="lobby\u202eevil", source="cam\x1b[2J", dwell=60.0
                ),
            ]
        )
    exe = str(Path(sys.executable).parent / "vision-stats")
    window = ["--since", RANGE["since"], "--until", RANGE["until"], "--db", db]

    def output(*args: str) -> str:
        return subprocess.run(
            [exe, *args, *window], capture_output=True, text=True, check=True
        ).stdout  # a pipe, not a terminal: escaped all the same

    for command in ("counts", "zones"):
        for out in (output(command), output(command, "--json")):
            for raw in RAW:
                assert raw not in out, (command, raw)
    assert "gate\\e]0;pwned\\x07" in output("counts") and "car\\x9b2J" in output("counts")
    assert "lobby\\u202eevil" in output("zones") and "cam\\e[2J" in output("zones")
    # the JSON still carries the exact values
    counts = json.loads(output("counts", "--json"))
    assert (counts["totals"][0]["line"], counts["totals"][0]["class_name"]) == (
        HOSTILE,
        "car\x9b2J",
    )
    zones = json.loads(output("zones", "--json"))
    assert (zones["occupancy"][0]["source_id"], zones["dwell"][0]["zone"]) == (
        "cam\x1b[2J", "lobby\u202eevil",
    )  # fmt: skip
