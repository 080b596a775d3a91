"""Fuzzing (hypothesis) of the frame-request decoder and of the frame endpoint.

Same budget rules as vision-stats' fuzz test (tests/fixtures/poison.py): a fixed,
derandomized set in CI, VISION_FUZZ_SECONDS for a long run. A body or a set of raw
metadata values either gives a frame with bounded metadata or a 4xx ServerError; the
endpoint never answers a 5xx.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import strategies as st
from litestar import Litestar
from litestar.testing import TestClient

from tests.fixtures.poison import HOSTILE_TEXT, encode, fuzz, fuzz_post, json_values
from vision_core.types import MAX_FRAME_INDEX
from vision_server.app import create_app
from vision_server.errors import ServerError
from vision_server.frames import prepare
from vision_server.settings import ServerSettings

API_KEY = "server-test-key-0123456789"
SKEW = timedelta(days=3650)
FIELDS = ("image_b64", "source_id", "frame_index", "ts_utc")


def _png() -> str:
    import cv2
    import numpy as np

    ok, buf = cv2.imencode(".png", np.zeros((8, 8, 3), np.uint8))
    assert ok
    return base64.b64encode(buf.tobytes()).decode()


PNG_B64 = _png()


@st.composite
def frame_bodies(draw: st.DrawFn) -> bytes:
    body: dict[str, Any] = {"image_b64": PNG_B64, "source_id": "cam-f", "frame_index": 1}
    for name in draw(st.lists(st.sampled_from(FIELDS), max_size=3, unique=True)):
        if draw(st.booleans()):
            body[name] = draw(json_values(6))
        else:
            body.pop(name, None)
    if draw(st.integers(0, 9)) == 0:
        body[draw(HOSTILE_TEXT)] = 1
    return encode(body)


ANY_BODY = frame_bodies() | json_values().map(encode) | st.binary(max_size=200)
META = st.fixed_dictionaries(
    {k: st.none() | HOSTILE_TEXT for k in ("source_id", "frame_index", "ts_utc")}
)


def _check_prepared(prepared: Any) -> None:
    assert 0 <= prepared.frame_index <= MAX_FRAME_INDEX
    assert 1 <= len(prepared.source_id) <= 200
    if prepared.ts_utc is not None:
        assert abs(prepared.ts_utc - datetime.now(UTC)) <= SKEW


def test_the_frame_decoder_gives_a_bounded_frame_or_a_4xx() -> None:
    seen = {"ok": 0, "refused": 0}

    def check_json(body: bytes) -> None:
        try:
            _check_prepared(prepare("json", body, {}, 40_000_000, SKEW))
            seen["ok"] += 1
        except ServerError as exc:
            assert 400 <= exc.status_code < 500, exc
            seen["refused"] += 1

    def check_raw(meta: dict[str, str | None]) -> None:
        try:
            _check_prepared(prepare("image", base64.b64decode(PNG_B64), meta, 40_000_000, SKEW))
            seen["ok"] += 1
        except ServerError as exc:
            assert 400 <= exc.status_code < 500, exc
            seen["refused"] += 1

    total = fuzz(ANY_BODY, check_json) + fuzz(META, check_raw)
    print(f"\nfuzz frame decoder: {total} inputs, {seen}")
    assert seen["ok"] > 0 and seen["refused"] > 0, seen


@pytest.fixture
def client(make_settings: Callable[..., ServerSettings]) -> Iterator[TestClient[Litestar]]:
    with TestClient(create_app(make_settings())) as c:
        yield c


def test_the_frame_endpoint_never_answers_a_5xx(client: TestClient[Litestar]) -> None:
    def check(r: Any) -> None:
        assert r.status_code < 500, r.text[:300]

    statuses = fuzz_post(client, "/api/v1/frame", API_KEY, ANY_BODY, check, "frame API")
    assert statuses.get(200, 0) > 0 and statuses.get(422, 0) > 0, statuses
    assert client.get("/health").status_code == 200
