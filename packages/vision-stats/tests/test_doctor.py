"""A database poisoned by writing rows directly with SQL (what the bounds now refuse, or
an older vision-stats let in): every read still answers, a normal event for the poisoned
source and class is still counted, and `vision-stats doctor` heals it. SQLite and
PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from click.testing import CliRunner
from litestar.testing import TestClient

from vision_core.secrets import Secret
from vision_stats.api import create_app
from vision_stats.cli import main
from vision_stats.settings import StatsSettings
from vision_stats.store import open_store
from vision_stats.store.base import to_us

KEY = "doctor-key-0123456789"
INT64_MAX = 2**63 - 1
SOURCE = "cam-poisoned"
NOW = datetime.now(UTC).replace(microsecond=0)
READS = (
    "/api/v1/stats/overview",
    "/api/v1/stats/overview?since=3650d",
    f"/api/v1/stats/overview?source={SOURCE}&since=2h",
    "/api/v1/stats/recent?limit=1000",
    "/api/v1/stats/classes",
    "/api/v1/stats/classes?since=3650d",
    "/api/v1/stats/classes?since=90m",
    "/api/v1/stats/series?bucket=minute",
    "/api/v1/stats/series?bucket=hour&since=2d",
    "/api/v1/stats/sources",
)


def _poison(db: str) -> int:
    """Write impossible rows straight into the tables; the number of events written."""
    ts = to_us(NOW - timedelta(minutes=30)) + 123  # not on a minute: edges read raw events
    rows: list[tuple[Any, ...]] = [
        ("p-future", 2**62, SOURCE, "local", 1, 1.0, 1, "", '{"car": 1}'),
        ("p-past", -(2**62), SOURCE, "local", 1, 1.0, 1, "", '{"car": 1}'),
        ("p-ints", ts, SOURCE, "local", INT64_MAX, 1.0, INT64_MAX, "", '{"car": 1}'),
        ("p-counts", ts + 1, SOURCE, "local", 1, 1.0, 2, "", '{"car": 1e30, "bus": -4}'),
        ("p-notjson", ts + 2, SOURCE, "local", 1, 1.0, 2, "", "not json"),
        ("p-array", ts + 3, SOURCE, "local", 1, 1.0, 2, "", "[1, 2]"),
        ("p-latency", ts + 4, SOURCE, "local", 1, 1e308, 1, "", '{"car": 1}'),
        ("p-negative", ts + 5, SOURCE, "local", -7, -3.0, -2, "", '{"car": -2}'),
    ]
    totals = [
        "INSERT INTO source_totals VALUES ('cam-poisoned', 9223372036854775807,"
        " 9223372036854775807, 1.0, 4611686018427387904)",
        "INSERT INTO source_class_totals VALUES ('cam-poisoned', 'car', 9223372036854775807)",
        f"INSERT INTO minute_rollup VALUES ({ts - ts % 60_000_000}, 'cam-poisoned',"
        " 9223372036854775807, 9223372036854775807, 1.0)",
        f"INSERT INTO minute_class_rollup VALUES ({ts - ts % 60_000_000}, 'cam-poisoned', 'car',"
        " 9223372036854775807)",
    ]
    insert = (
        "INSERT INTO events (event_id, ts_us, source_id, mode, frame_index, latency_ms,"
        " detections_total, model, counts_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
    )
    if db.endswith(".db"):
        import sqlite3

        with sqlite3.connect(db) as conn:
            conn.executemany(insert, rows)
            for sql in totals:
                conn.execute(sql)
    else:
        import psycopg

        rows.append(("p-nan", ts + 6, SOURCE, "local", 1, float("nan"), 1, "", '{"car": 1}'))
        rows.append(("p-inf", ts + 7, SOURCE, "local", 1, float("inf"), 1, "", '{"car": 1}'))
        with psycopg.connect(db, autocommit=True) as conn:
            conn.cursor().executemany(insert.replace("?", "%s"), rows)
            for sql in totals:
                conn.execute(sql)
    return len(rows)


@pytest.fixture
def poisoned_db(db_url: str) -> Iterator[str]:
    open_store(db_url).close()  # the schema
    _poison(db_url)
    yield db_url


def _reads_work(client: TestClient[Any]) -> dict[str, Any]:
    answers = {}
    for path in READS:
        r = client.get(path)
        assert r.status_code == 200, (path, r.text[:300])
        answers[path] = r.json()
    return answers


def test_reads_survive_poisoned_rows_and_doctor_heals_them(poisoned_db: str) -> None:
    db = poisoned_db
    settings = StatsSettings(db=db, api_key=Secret(KEY, "K"))
    with TestClient(create_app(settings)) as client:
        before = _reads_work(client)
        assert before["/api/v1/stats/overview"]["events_total"] == INT64_MAX  # saturated
        normal = {
            "event_id": "normal-1", "ts_utc": NOW.isoformat(), "source_id": SOURCE,
            "mode": "local", "frame_index": 1, "latency_ms": 2.0, "detections_total": 3,
            "counts_by_class": {"car": 3},
        }  # fmt: skip
        r = client.post("/api/v1/stats/events", json=normal, headers={"X-API-Key": KEY})
        assert r.status_code == 200 and r.json()["stored"] == 1, r.text  # saturating upsert
        _reads_work(client)
    runner = CliRunner()
    for command in (["overview"], ["recent"], ["sources"], ["classes"], ["recent", "--json"]):
        result = runner.invoke(main, [*command, "--db", db])
        assert result.exit_code == 0, (command, result.output)

    check = json.loads(runner.invoke(main, ["doctor", "--check", "--json", "--db", db]).output)
    assert (check["bad_time"], check["repaired"]) == (2, False)
    assert check["bad_numbers"] >= 3 and check["bad_counts"] >= 3, check
    result = runner.invoke(main, ["doctor", "--db", db])
    assert result.exit_code == 0 and "rollups rebuilt" in result.output, result.output
    again = json.loads(runner.invoke(main, ["doctor", "--check", "--json", "--db", db]).output)
    assert (again["bad_time"], again["bad_numbers"], again["bad_counts"]) == (0, 0, 0), again

    with TestClient(create_app(settings)) as client:
        after = _reads_work(client)
        overview = after["/api/v1/stats/overview"]
        events = client.get("/api/v1/stats/recent?limit=1000").json()
        assert overview["events_total"] == len(events) == check["events"] - 2 + 0
        assert overview["detections_total"] == sum(e["detections_total"] for e in events)
        assert all(0 <= e["frame_index"] <= 2**53 - 1 for e in events)
        assert all(0 <= e["latency_ms"] <= 86_400_000 for e in events)
        cars = {c["class_name"]: c["detections"] for c in after["/api/v1/stats/classes"]}
        assert cars["car"] == sum(e["counts_by_class"].get("car", 0) for e in events)
