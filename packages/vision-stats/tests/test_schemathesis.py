"""schemathesis, all checks, against a live `vision-stats serve` (tests/fixtures/api_checks)."""

from __future__ import annotations

from typing import Any

import pytest
from schemathesis import GenerationMode

from tests.fixtures.api_checks import run_all_checks

MAX_EXAMPLES = 80  # per mode, over all operations


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_every_schemathesis_check_passes(live_server: Any, mode: GenerationMode) -> None:
    seen = run_all_checks(
        f"{live_server.url}/schema/openapi.json",
        live_server.url,
        live_server.headers["X-API-Key"],
        mode,
        MAX_EXAMPLES,
        # a time string that is no time or in the wrong order (400), ts_utc outside
        # stats.max_ts_skew_days of now (422): JSON schema cannot say either
        semantic=("400", "422"),
    )
    for operation in (
        "POST /api/v1/stats/events",
        "POST /api/v1/stats/track-events",
        "GET /api/v1/stats/track/counts",
        "GET /api/v1/stats/track/occupancy",
    ):
        assert any(k.startswith(operation) for k in seen), (operation, seen)
    if mode == GenerationMode.NEGATIVE:
        assert any(k.startswith("POST /api/v1/stats/events 4") for k in seen), seen
        assert any(k.startswith("POST /api/v1/stats/track-events 4") for k in seen), seen
