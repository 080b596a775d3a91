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
    POISON_SOURCE,
    STATS_POISON,
    good_event,
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
)


@pytest.fixture(scope="module")
def poisoned(module_db_url: str) -> Iterator[tuple[TestClient[Any], str]]:
    settings = StatsSettings(db=module_db_url, api_key=Secret(KEY, "K"), max_body_mb=8)
    with TestClient(create_app(settings)) as client:
        yield client, module_db_url


def _post(client: TestClient[Any], body: Any, content_type: str) -> Any:
    return client.post(
        URL, content=poison_bytes(body), headers={"X-API-Key": KEY, "Content-Type": content_type}
    )


def _events(client: TestClient[Any]) -> int:
    return int(client.get("/api/v1/stats/overview").json()["events_total"])


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [pytest.param(b, c, s, id=name) for name, b, c, s in STATS_POISON],
)
def test_a_poison_body_is_refused_with_a_4xx_and_stores_nothing(
    poisoned: tuple[TestClient[Any], str], body: Any, content_type: str, status: int
) -> None:
    client, _ = poisoned
    before = _events(client)
    r = _post(client, body, content_type)
    assert r.status_code == status, r.text[:500]
    answer = r.json()
    assert answer["status_code"] == status and answer["request_id"] == r.headers["x-request-id"]
    assert len(r.content) < 4096  # the detail names the problem, it does not echo 1 MB
    assert _events(client) == before


def test_after_the_poison_reads_commands_and_a_normal_event_work(
    poisoned: tuple[TestClient[Any], str],
) -> None:
    client, db = poisoned
    for _, body, content_type, _status in STATS_POISON:  # the whole table, in one go
        assert _post(client, body, content_type).status_code < 500
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
