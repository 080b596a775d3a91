"""Poison inputs through the stats API, on SQLite and PostgreSQL: never a 5xx, nothing
stored, and afterwards every read endpoint and command works and a normal event for the
same source and class is accepted and counted."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from click.testing import CliRunner
from litestar.testing import TestClient

from tests.fixtures.poison import (
    POISON_CLASS,
    POISON_LINE,
    POISON_SOURCE,
    STATS_POISON,
    TRACK_POISON,
    good_crossing,
    good_event,
    good_summary,
    good_zone,
    poison_bytes,
)
from vision_core.secrets import Secret
from vision_stats.api import create_app
from vision_stats.cli import main
from vision_stats.settings import StatsSettings

KEY = "poison-key-0123456789"
URL = "/api/v1/stats/events"
READS = (
    "/api/v1/stats/overview",
    f"/api/v1/stats/overview?source={POISON_SOURCE}&since=3650d",
    "/api/v1/stats/recent?limit=1000",
    "/api/v1/stats/classes?since=3650d",
    "/api/v1/stats/classes",
    "/api/v1/stats/series?bucket=hour",
    "/api/v1/stats/sources",
    "/api/v1/stats/health",
    "/api/v1/stats/track/counts?since=1000d&bucket=day",
    f"/api/v1/stats/track/counts?source={POISON_SOURCE}&line={POISON_LINE}&since=1000d&bucket=day",
    "/api/v1/stats/track/occupancy",
    "/api/v1/stats/track/occupancy/series?since=1000d&bucket=day",
    "/api/v1/stats/track/dwell?since=3650d",
    "/api/v1/stats/track/summaries?since=1000d&bucket=day",
)
TRACK_URL = "/api/v1/stats/track-events"


@pytest.fixture(scope="module")
def poisoned(module_db_url: str) -> Iterator[tuple[TestClient[Any], str]]:
    settings = StatsSettings(db=module_db_url, api_key=Secret(KEY, "K"), max_body_mb=8)
    with TestClient(create_app(settings)) as client:
        yield client, module_db_url


def _post(
    client: TestClient[Any], url: str, body: Any, content_type: str = "application/json"
) -> Any:
    return client.post(
        url, content=poison_bytes(body), headers={"X-API-Key": KEY, "Content-Type": content_type}
    )


def _refused(r: Any, status: int) -> dict[str, Any]:
    """The JSON answer to a refused body, checked: the status, the request id, short."""
    assert r.status_code == status, r.text[:500]
    answer: dict[str, Any] = r.json()
    assert answer["status_code"] == status and answer["request_id"] == r.headers["x-request-id"]
    assert len(r.content) < 4096  # the detail names the problem, it does not echo 1 MB
    return answer


def _events(client: TestClient[Any]) -> int:
    return int(client.get("/api/v1/stats/overview").json()["events_total"])


def _stored_track_rows(client: TestClient[Any]) -> tuple[int, int, int]:
    day = {"since": "1000d", "bucket": "day"}
    crossings = sum(
        t["in"] + t["out"]
        for t in client.get("/api/v1/stats/track/counts", params=day).json()["totals"]
    )
    zones = client.get("/api/v1/stats/track/occupancy").json()
    summaries = client.get("/api/v1/stats/track/summaries", params=day).json()["buckets"]
    return (
        crossings,
        sum(z["enters"] + z["exits"] for z in zones),
        sum(b["intervals"] for b in summaries),
    )


def _stored(client: TestClient[Any]) -> tuple[int, int, int, int]:
    return (_events(client), *_stored_track_rows(client))


@pytest.mark.parametrize(
    ("url", "body", "content_type", "status", "field"),
    [pytest.param(URL, b, c, s, "", id=name) for name, b, c, s in STATS_POISON]
    + [
        pytest.param(TRACK_URL, b, "application/json", s, f, id=f"track-{name}")
        for name, b, s, f in TRACK_POISON
    ],
)
def test_a_poison_body_is_refused_with_a_4xx_naming_the_field_and_stores_nothing(
    poisoned: tuple[TestClient[Any], str],
    url: str,
    body: Any,
    content_type: str,
    status: int,
    field: str,
) -> None:
    client, _ = poisoned
    before = _stored(client)
    answer = _refused(_post(client, url, body, content_type), status)
    if field:
        assert f"invalid event at {field}" in answer["detail"], answer["detail"]
        assert answer["extra"]["field"].startswith(field)
    assert _stored(client) == before


def test_after_the_poison_reads_commands_and_a_normal_event_work(
    poisoned: tuple[TestClient[Any], str],
) -> None:
    client, db = poisoned
    for _, body, content_type, _status in STATS_POISON:  # the whole table, in one go
        assert _post(client, URL, body, content_type).status_code < 500
    for path in READS:
        r = client.get(path, headers={"X-API-Key": KEY})
        assert r.status_code == 200, (path, r.text[:300])
    cars = {c["class_name"]: c["detections"] for c in client.get("/api/v1/stats/classes").json()}
    before = _events(client)
    normal = {
        **good_event(7),
        "event_id": f"normal-{datetime.now(UTC).timestamp()}",
        "ts_utc": datetime.now(UTC).isoformat(),
        "source_id": POISON_SOURCE,
        "counts_by_class": {POISON_CLASS: 3},
        "detections_total": 3,
    }
    r = client.post(URL, json=normal, headers={"X-API-Key": KEY})
    assert r.status_code == 200 and r.json()["stored"] == 1, r.text
    assert _events(client) == before + 1
    after = {c["class_name"]: c["detections"] for c in client.get("/api/v1/stats/classes").json()}
    assert after[POISON_CLASS] == cars.get(POISON_CLASS, 0) + 3
    runner = CliRunner()
    for command in (["overview"], ["recent"], ["sources"], ["overview", "--json"]):
        result = runner.invoke(main, [*command, "--db", db])
        assert result.exit_code == 0, (command, result.output, result.stderr)
        assert POISON_SOURCE in result.output or command[0] == "overview"
    overview = json.loads(runner.invoke(main, ["overview", "--json", "--db", db]).output)
    assert overview["events_total"] == before + 1


def test_after_the_track_poison_reads_commands_and_normal_track_events_work(
    poisoned: tuple[TestClient[Any], str],
) -> None:
    client, db = poisoned
    for _, body, _status, _field in TRACK_POISON:
        assert _post(client, TRACK_URL, body).status_code < 500
    for path in READS:
        r = client.get(path, headers={"X-API-Key": KEY})
        assert r.status_code == 200, (path, r.text[:300])
    before = _stored_track_rows(client)
    stamp = datetime.now(UTC)
    normal = [
        {**good_crossing(1), "event_id": f"nx-{stamp.timestamp()}", "ts_utc": stamp.isoformat()},
        {**good_zone(1), "event_id": f"nz-{stamp.timestamp()}", "ts_utc": stamp.isoformat(),
         "action": "enter"},
        {**good_summary(1), "event_id": f"ns-{stamp.timestamp()}"},
    ]  # fmt: skip
    r = client.post(TRACK_URL, json=normal, headers={"X-API-Key": KEY})
    assert r.status_code == 200 and r.json()["stored"] == 3, r.text
    crossings, zone_events, intervals = before
    assert _stored_track_rows(client) == (crossings + 1, zone_events + 1, intervals + 1)
    runner = CliRunner()
    for command in (
        ["counts", "--since", "1000d", "--bucket", "day"],
        ["zones"],
        ["zones", "--json"],
    ):
        result = runner.invoke(main, [*command, "--db", db])
        assert result.exit_code == 0, (command, result.output, result.stderr)
        assert POISON_SOURCE in result.output or command[0] == "counts"
