"""Fuzzing (hypothesis) of the event decoder and of ingest through the real app.

A fixed, derandomized budget in CI (VISION_FUZZ_EXAMPLES, 150 by default: a few
seconds); `VISION_FUZZ_SECONDS=300` keeps generating new examples for that long. Every
body must decode to bounded events or be refused with the errors that map to 400/422;
through the app, no answer is a 5xx, and the reads keep working.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from litestar.testing import TestClient

from tests.fixtures.poison import bodies, fuzz, fuzz_post
from vision_core.secrets import Secret
from vision_core.types import MAX_DETECTIONS, MAX_FRAME_INDEX, StatsEvent
from vision_stats.api import create_app
from vision_stats.decode import decode_events
from vision_stats.errors import InvalidEventsError, MalformedBodyError
from vision_stats.settings import StatsSettings

KEY = "fuzz-key-0123456789"
READS = ("overview", "recent", "sources", "classes", "series")


def test_the_event_decoder_accepts_only_bounded_events() -> None:
    settings = StatsSettings(db="unused", api_key=Secret(KEY, "K"))
    now = datetime.now(UTC)
    outcomes = {"accepted": 0, "refused": 0}

    def check(body: bytes) -> None:
        try:
            events = decode_events(body, settings, now=now)
        except (InvalidEventsError, MalformedBodyError) as exc:
            assert exc.status_code in (400, 422)
            outcomes["refused"] += 1
            return
        outcomes["accepted"] += 1
        for ev in events:
            assert isinstance(ev, StatsEvent)
            assert 0 <= ev.frame_index <= MAX_FRAME_INDEX
            assert 0 <= ev.detections_total <= MAX_DETECTIONS
            assert abs((ev.ts_utc - now).days) <= settings.max_ts_skew_days
            assert all(0 <= n <= MAX_DETECTIONS for n in ev.counts_by_class.values())

    total = fuzz(bodies(), check)
    print(f"\nfuzz event decoder: {total} bodies, {outcomes}")
    assert total >= 100 and outcomes["accepted"] > 0 and outcomes["refused"] > 0, outcomes


@pytest.fixture(scope="module")
def app_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient[Any]]:
    db = tmp_path_factory.mktemp("fuzz") / "stats.db"
    settings = StatsSettings(db=str(db), api_key=Secret(KEY, "K"))
    with TestClient(create_app(settings)) as client:
        yield client


def test_ingest_never_answers_a_5xx_and_reads_keep_working(app_client: TestClient[Any]) -> None:
    def check(r: Any) -> None:
        assert r.status_code in (200, 400, 422), r.text[:300]
        assert r.json()["status_code" if r.status_code != 200 else "received"] is not None

    statuses = fuzz_post(app_client, "/api/v1/stats/events", KEY, bodies(), check, "ingest API")
    assert statuses.get(200, 0) > 0, statuses
    for read in READS:
        r = app_client.get(f"/api/v1/stats/{read}")
        assert r.status_code == 200, (read, r.text[:300])
