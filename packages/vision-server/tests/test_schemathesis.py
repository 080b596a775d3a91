"""Property-based API tests (schemathesis) against a live server: no input gives a 5xx.

Cases are generated from the app's own OpenAPI schema, positive (valid per the schema)
and negative (invalid) data for every operation, each sent with the right key (to reach
the handlers) and with the generated key or none. Every 4xx must carry the JSON error
body. (schemathesis' pytest plugin loader does not run on pytest 9, so the strategies are
driven by hypothesis directly.)
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hyp_settings
from schemathesis import GenerationMode

API_KEY = "server-test-key-0123456789"
MAX_EXAMPLES = 120  # per mode, over all operations: ~10 s each on 2 cores


@pytest.fixture(scope="module")
def api_schema(live_graph_server: Any) -> Any:
    return schemathesis.openapi.from_url(f"{live_graph_server.url}/schema/openapi.json")


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_generated_input_gives_a_server_error(
    api_schema: Any, live_graph_server: Any, mode: GenerationMode
) -> None:
    seen: dict[str, int] = {}

    @hyp_settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=api_schema.as_strategy(generation_mode=mode))
    def check(case: Any) -> None:
        for headers in ({"X-API-Key": API_KEY}, None):
            response = case.call(base_url=live_graph_server.url, headers=headers, timeout=30)
            status = response.status_code
            key = f"{case.method} {case.path} {status}"
            seen[key] = seen.get(key, 0) + 1
            assert status < 500, f"{case.method} {case.path} -> {status}: {response.text[:500]}"
            if status >= 400:
                body = response.json()
                assert body["status_code"] == status and body["detail"], body

    check()
    assert any(k.startswith("POST /api/v1/frame") for k in seen)
    if mode == GenerationMode.NEGATIVE:  # invalid frames were refused with a 4xx
        assert any(k.startswith("POST /api/v1/frame 4") for k in seen), seen
