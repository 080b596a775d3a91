"""The LLM client against the fake OpenAI-compatible server (real HTTP, real openai client):
token bucket, retries with backoff and Retry-After, timeouts, structured-output fallback,
the durable cache, token usage, and the API key kept out of errors."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.fixtures.llm_server import FakeLLM, Fault
from vision_core.config.schema import LLMSection
from vision_core.llm import (
    LLMCallError,
    LLMClient,
    LLMDetector,
    LLMParseError,
    ResponseCache,
    TokenBucket,
    cache_key,
)
from vision_core.media import encode_jpeg

NAMES = {0: "circle", 1: "square", 2: "triangle"}


def _settings(server: FakeLLM, **kw: Any) -> LLMSection:
    base: dict[str, Any] = {
        "base_url": server.url,
        "model": "fake-vlm",
        "timeout_sec": 2.0,
        "max_retries": 3,
        "retry_backoff_sec": 0.01,
        "max_requests_per_sec": 1000.0,
    }
    base.update(kw)
    return LLMSection(**base)


def _image(seed: int) -> tuple[np.ndarray, bytes]:
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 255, (40, 60, 3), dtype=np.uint8)
    return img, encode_jpeg(img, 90)


def _truth(tmp_path: Path, server: FakeLLM, data: bytes, line: str) -> None:
    img = tmp_path / f"{hash(data)}.jpg"
    img.write_bytes(data)
    lbl = tmp_path / f"{hash(data)}.txt"
    lbl.write_text(line + "\n")
    server.register(img, lbl)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, sec: float) -> None:
        self.now += sec


def test_token_bucket_spaces_acquisitions_at_the_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(5.0, clock=clock, sleep=clock.sleep)
    for _ in range(11):
        bucket.acquire()
    assert clock.now == pytest.approx(2.0)  # 10 intervals of 0.2 s after the first token


def test_token_bucket_is_shared_by_threads() -> None:
    bucket = TokenBucket(50.0)
    t0 = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda _: bucket.acquire(), range(26)))
    assert time.monotonic() - t0 >= 25 / 50.0 - 0.02


def test_detector_returns_truth_boxes_in_pixels(llm_server: FakeLLM, tmp_path: Path) -> None:
    _img, data = _image(1)
    _truth(tmp_path, llm_server, data, "1 0.5 0.5 0.5 0.5")
    det = LLMDetector(_settings(llm_server), NAMES, cache_dir=tmp_path / "cache")
    parsed = det.detect_encoded(data, "image/jpeg", 60, 40)
    (d,) = parsed.detections
    assert d.class_name == "square" and d.xyxy == pytest.approx((15, 10, 45, 30), abs=1e-3)
    assert llm_server.calls[0].structured and llm_server.calls[0].model == "fake-vlm"
    stats = det.stats.as_dict()
    assert stats["requests"] == 1 and stats["total_tokens"] == 120
    det.close()


def test_cache_makes_a_second_ask_free_and_survives_reopening(
    llm_server: FakeLLM, tmp_path: Path
) -> None:
    img, data = _image(2)
    _truth(tmp_path, llm_server, data, "0 0.25 0.25 0.2 0.2")
    first = LLMDetector(_settings(llm_server), NAMES, cache_dir=tmp_path / "cache")
    a = first.detect(img)
    first.close()
    again = LLMDetector(_settings(llm_server), NAMES, cache_dir=tmp_path / "cache")
    b = again.detect(img)
    assert a == b and len(llm_server.calls) == 1
    assert again.stats.as_dict()["cache_hits"] == 1 and again.stats.as_dict()["requests"] == 0
    other_model = LLMDetector(
        _settings(llm_server, model="other"), NAMES, cache_dir=tmp_path / "cache"
    )
    other_model.detect(img)
    assert len(llm_server.calls) == 2  # the model is part of the key
    again.close()
    other_model.close()


def test_cache_key_depends_on_image_model_and_prompt(tmp_path: Path) -> None:
    keys = {cache_key("a", "m", "p"), cache_key("b", "m", "p"), cache_key("a", "n", "p")}
    keys.add(cache_key("a", "m", "q"))
    assert len(keys) == 4
    cache = ResponseCache(tmp_path / "c.sqlite")
    cache.put("k", image_sha256="a", model="m", prompt="p", answer="{}", usage={"x": 1})
    assert cache.get("k") == ("{}", {"x": 1}) and cache.get("nope") is None and len(cache) == 1
    cache.close()


@pytest.mark.parametrize("status", [429, 500, 502, 503])
def test_transient_statuses_are_retried(llm_server: FakeLLM, status: int) -> None:
    _, data = _image(3)
    llm_server.fail_next(Fault("status", status), n=2)
    client = LLMClient(_settings(llm_server))
    answer = client.complete(data, "image/jpeg", "find shapes")
    assert answer.attempts == 3 and [c.status for c in llm_server.calls] == [status, status, 200]
    assert client.stats.as_dict()["retries"] == 2
    client.close()


def test_retry_after_is_honoured(llm_server: FakeLLM) -> None:
    _, data = _image(4)
    llm_server.fail_next(Fault("status", 429, retry_after=0.6))
    client = LLMClient(_settings(llm_server))
    client.complete(data, "image/jpeg", "p")
    gap = llm_server.calls[1].t - llm_server.calls[0].t
    assert gap >= 0.6  # backoff alone would be ~0.01 s
    client.close()


def test_backoff_doubles_with_jitter(llm_server: FakeLLM) -> None:
    client = LLMClient(_settings(llm_server, retry_backoff_sec=1.0))
    for k in range(4):
        assert 0.75 * 2**k <= client.backoff(k) <= 2**k
    assert client.backoff(0, retry_after=5.0) == 5.0
    client.close()


def test_retries_are_bounded_then_the_call_fails(llm_server: FakeLLM) -> None:
    _, data = _image(5)
    llm_server.fail_next(Fault("status", 503), n=10)
    client = LLMClient(_settings(llm_server, max_retries=2))
    with pytest.raises(LLMCallError, match="HTTP 503 after 3 attempt") as err:
        client.complete(data, "image/jpeg", "p")
    assert err.value.status == 503 and len(llm_server.calls) == 3
    client.close()


def test_non_retryable_status_fails_at_once(llm_server: FakeLLM) -> None:
    _, data = _image(6)
    llm_server.fail_next(Fault("status", 404))
    client = LLMClient(_settings(llm_server))
    with pytest.raises(LLMCallError, match="HTTP 404"):
        client.complete(data, "image/jpeg", "p")
    assert len(llm_server.calls) == 1
    client.close()


def test_a_hang_past_the_timeout_is_retried(llm_server: FakeLLM) -> None:
    _, data = _image(7)
    llm_server.fail_next(Fault("hang", hang_sec=1.5))
    client = LLMClient(_settings(llm_server, timeout_sec=0.5))
    answer = client.complete(data, "image/jpeg", "p")
    assert answer.attempts == 2 and client.stats.as_dict()["status_counts"]["timeout"] == 1
    client.close()


def test_structured_output_falls_back_to_json_in_text(llm_server: FakeLLM, tmp_path: Path) -> None:
    img, data = _image(8)
    _truth(tmp_path, llm_server, data, "2 0.5 0.5 0.2 0.2")
    llm_server.reject_response_format = True
    det = LLMDetector(_settings(llm_server), NAMES)
    (d,) = det.detect(img)  # the fallback answer comes in a ```json fence
    assert d.class_name == "triangle"
    assert [c.structured for c in llm_server.calls] == [True, False]
    det.detect(_image(9)[0])
    assert llm_server.calls[-1].structured is False  # remembered
    assert det.stats.as_dict()["structured_fallbacks"] == 1
    det.close()


def test_malformed_answer_raises_and_is_not_cached(llm_server: FakeLLM, tmp_path: Path) -> None:
    img, _data = _image(10)
    llm_server.fail_next(Fault("malformed"))
    det = LLMDetector(_settings(llm_server), NAMES, cache_dir=tmp_path / "cache")
    with pytest.raises(LLMParseError):
        det.detect(img)
    det.detect(img)  # asks again: nothing was cached
    assert len(llm_server.calls) == 2
    det.close()


def test_api_key_is_sent_but_never_in_errors(
    llm_server: FakeLLM, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "sk-test-supersecret-123456"
    monkeypatch.setenv("FAKE_LLM_KEY", secret)
    _, data = _image(11)
    llm_server.fail_next(Fault("status", 404))
    det = LLMDetector(_settings(llm_server, api_key_env="FAKE_LLM_KEY"), NAMES)
    with pytest.raises(LLMCallError) as err:
        det.client.complete(data, "image/jpeg", "p")
    assert llm_server.calls[0].auth == f"Bearer {secret}"
    assert secret not in str(err.value) and secret not in repr(det.client.stats)
    det.close()


def test_qps_limit_holds_across_concurrent_workers(llm_server: FakeLLM) -> None:
    client = LLMClient(_settings(llm_server, max_requests_per_sec=20.0))
    images = [_image(100 + i)[1] for i in range(12)]
    lock = threading.Lock()
    done: list[int] = []

    def ask(data: bytes) -> None:
        client.complete(data, "image/jpeg", "p")
        with lock:
            done.append(1)

    with ThreadPoolExecutor(6) as pool:
        list(pool.map(ask, images))
    times = sorted(c.t for c in llm_server.calls)
    # 12 calls at 20/s span 0.55 s; without a shared limit they would all land within a few
    # ms. The margin absorbs the scheduling jitter of a loaded 2-core machine (seen: 0.497 s)
    assert len(done) == 12 and times[-1] - times[0] >= 0.35
    client.close()
