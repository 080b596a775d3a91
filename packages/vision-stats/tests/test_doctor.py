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


# -- tracking tables ---------------------------------------------------------------------

TRACK_READS = (
    "/api/v1/stats/track/counts?since=3h",
    "/api/v1/stats/track/counts?since=3h&bucket=minute",
    f"/api/v1/stats/track/counts?since=30d&bucket=day&source={SOURCE}&line=gate",
    "/api/v1/stats/track/occupancy",
    "/api/v1/stats/track/occupancy/series?since=3h",
    "/api/v1/stats/track/occupancy/series?since=3h&bucket=minute",
    "/api/v1/stats/track/dwell?since=3h",
    "/api/v1/stats/track/summaries?since=3h",
    "/api/v1/stats/track/summaries?since=3h&bucket=minute",
)


def _poison_track(db: str) -> None:
    """Impossible tracking rows and rollups, written straight into the tables."""
    ts = to_us(NOW - timedelta(minutes=30)) + 123
    hour = ts - ts % 3_600_000_000
    crossings = [
        ("px-future", 2**62, SOURCE, "gate", "in", "car", 1, "", 1),
        ("px-direction", ts, SOURCE, "gate", "sideways", "car", 1, "", 1),
        ("px-ints", ts, SOURCE, "gate", "in", "car", INT64_MAX, "", -7),
        ("px-ok", ts, SOURCE, "gate", "out", "car", 3, "", 3),
    ]
    big_dwell = 1e308
    zones = [
        ("pz-past", -(2**62), SOURCE, "lobby", "enter", "car", 1, "", 1, 0.0, 1, 0),
        ("pz-action", ts, SOURCE, "lobby", "leave", "car", 1, "", 1, 0.0, 1, 0),
        ("pz-enter", ts, SOURCE, "lobby", "enter", "car", 2, "", 1, 0.0, 1, 0),
        ("pz-dwell", ts + 1, SOURCE, "lobby", "exit", "car", 2, "", 1, big_dwell, 0, 0),
        ("pz-negative", ts + 2, SOURCE, "lobby", "exit", "car", -4, "", 1, -3.0, -1, 7),
    ]
    summaries = [
        ("ps-past", -(2**62), 0, SOURCE, 5, ""),
        ("ps-backwards", ts, ts - 60_000_000, SOURCE, -1, ""),
    ]
    classes = [
        ("ps-backwards", "car", ts, SOURCE, 2**62, -1, 3),
        ("ps-gone", "car", ts, SOURCE, 1, 1, 1),
    ]
    rollups = [
        f"INSERT INTO crossing_hour VALUES ({hour}, '{SOURCE}', 'gate', 'car', 'in',"
        " 9223372036854775807)",
        f"INSERT INTO zone_hour VALUES ({hour}, '{SOURCE}', 'lobby', 'car', 9223372036854775807,"
        " 0, 0, 1e308, 1e308)",
        f"INSERT INTO zone_state VALUES ('{SOURCE}', 'lobby', 'car', 9223372036854775807, 0, 0)",
        f"INSERT INTO summary_class_hour VALUES ({hour}, '{SOURCE}', 'car', 9223372036854775807,"
        " 9223372036854775807, 9223372036854775807)",
    ]
    inserts = [
        ("crossings", crossings), ("zone_events", zones), ("summaries", summaries),
        ("summary_classes", classes),
    ]  # fmt: skip
    if db.endswith(".db"):
        import sqlite3

        with sqlite3.connect(db) as conn:
            for table, rows in inserts:
                marks = ", ".join("?" * len(rows[0]))
                conn.executemany(f"INSERT INTO {table} VALUES ({marks})", rows)
            for sql in rollups:
                conn.execute(sql)
    else:
        import psycopg

        zones.append(("pz-nan", ts + 3, SOURCE, "lobby", "exit", "car", 2, "", 1,
                      float("nan"), 0, 1))  # fmt: skip
        with psycopg.connect(db, autocommit=True) as conn:
            for table, rows in inserts:
                marks = ", ".join(["%s"] * len(rows[0]))
                conn.cursor().executemany(f"INSERT INTO {table} VALUES ({marks})", rows)
            for sql in rollups:
                conn.execute(sql)


def test_reads_survive_poisoned_tracking_rows_and_doctor_heals_them(db_url: str) -> None:
    open_store(db_url).close()
    _poison_track(db_url)
    settings = StatsSettings(db=db_url, api_key=Secret(KEY, "K"))
    with TestClient(create_app(settings)) as client:
        for path in TRACK_READS:
            r = client.get(path)
            assert r.status_code == 200, (path, r.text[:300])
        counts = client.get("/api/v1/stats/track/counts?since=3h").json()
        assert counts["totals"][0]["in"] == INT64_MAX  # saturated, not an error
        normal = [
            {"kind": "crossing", "event_id": "n-x", "ts_utc": NOW.isoformat(), "source_id": SOURCE,
             "line": "gate", "direction": "in", "class_name": "car", "track_id": 9},
            {"kind": "zone", "event_id": "n-z", "ts_utc": NOW.isoformat(), "source_id": SOURCE,
             "zone": "lobby", "action": "enter", "class_name": "car", "track_id": 9},
        ]  # fmt: skip
        r = client.post("/api/v1/stats/track-events", json=normal, headers={"X-API-Key": KEY})
        assert r.status_code == 200 and r.json()["stored"] == 2, r.text  # saturating upserts
        for path in TRACK_READS:
            assert client.get(path).status_code == 200, path
    runner = CliRunner()
    for command in (["counts"], ["counts", "--bucket", "minute"], ["zones"], ["zones", "--json"]):
        result = runner.invoke(main, [*command, "--db", db_url])
        assert result.exit_code == 0, (command, result.output)

    check = json.loads(runner.invoke(main, ["doctor", "--check", "--json", "--db", db_url]).output)
    pg = not db_url.endswith(".db")
    # deleted: px-future, px-direction, pz-past, pz-action, ps-past, the orphan ps-gone/car
    assert (check["track_deleted"], check["repaired"]) == (6, False), check
    # clamped: px-ints, pz-dwell, pz-negative, ps-backwards, its class row (+ pz-nan)
    assert check["track_clamped"] == 5 + pg, check
    assert check["track_rows"] == 4 + 5 + pg + 2 + 2 + 2  # +2: the normal events
    result = runner.invoke(main, ["doctor", "--db", db_url])
    assert result.exit_code == 0 and "tracking rows" in result.output, result.output
    again = json.loads(runner.invoke(main, ["doctor", "--check", "--json", "--db", db_url]).output)
    assert (again["track_deleted"], again["track_clamped"]) == (0, 0), again

    with TestClient(create_app(settings)) as client:
        counts = client.get("/api/v1/stats/track/counts?since=3h").json()
        # what is left: px-ints (in), px-ok (out), the normal crossing (in)
        assert counts["totals"] == [{"line": "gate", "class_name": "car", "in": 2, "out": 1}]
        (lobby,) = client.get("/api/v1/stats/track/occupancy").json()
        # pz-enter and n-z entered; pz-dwell, pz-negative (and pz-nan) left
        assert (lobby["enters"], lobby["exits"], lobby["lost_exits"]) == (2, 2 + pg, 1 + pg)
        assert lobby["occupancy"] == 0
        (dwell,) = client.get("/api/v1/stats/track/dwell?since=3h").json()
        assert dwell["max_sec"] == 86_400_000 * 3650 and dwell["exits"] == 2 + pg
        summaries = client.get("/api/v1/stats/track/summaries?since=3h").json()
        assert sum(b["intervals"] for b in summaries["buckets"]) == 1
        cars = [b["detections_by_class"].get("car", 0) for b in summaries["buckets"]]
        assert sum(cars) == 1_000_000  # 2**62 clamped to the bound
