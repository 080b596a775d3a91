"""schemathesis, all checks, against a live `vision-server serve` (tests/fixtures/api_checks).

Every 4xx carries the JSON error body (the response schema check holds it to ErrorBody).
"""

from __future__ import annotations

from typing import Any

import pytest
from schemathesis import GenerationMode

from tests.fixtures.api_checks import run_all_checks

API_KEY = "server-test-key-0123456789"
MAX_EXAMPLES = 120  # per mode, over all operations: ~10 s each on 2 cores


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_every_schemathesis_check_passes(live_graph_server: Any, mode: GenerationMode) -> None:
    seen = run_all_checks(
        f"{live_graph_server.url}/schema/openapi.json",
        live_graph_server.url,
        API_KEY,
        mode,
        MAX_EXAMPLES,
        # base64 that is not a whole JPEG/PNG (422) or declares too many pixels (413), a
        # ts_utc outside stats.max_ts_skew_days (422): no JSON schema can say these
        semantic=("413", "422"),
    )
    assert any(k.startswith("POST /api/v1/frame") for k in seen), seen
    if mode == GenerationMode.NEGATIVE:  # invalid frames were refused with a 4xx
        assert any(k.startswith("POST /api/v1/frame 4") for k in seen), seen
