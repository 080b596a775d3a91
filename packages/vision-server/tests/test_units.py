"""Small pieces: the rate limiter, the Prometheus metrics, the runner plan."""

from __future__ import annotations

import io
from typing import Any

import pytest

from vision_core.logging import StructuredLogger
from vision_core.web import WebMetrics
from vision_server.model import load_model, plan_runners
from vision_server.ratelimit import RateLimiter


def test_token_bucket_allows_the_rate_and_a_burst() -> None:
    rl = RateLimiter(2.0)  # 2/s, burst 2
    assert rl.acquire("a", now=0.0) == 0.0
    assert rl.acquire("a", now=0.0) == 0.0
    wait = rl.acquire("a", now=0.0)
    assert wait == pytest.approx(0.5)
    assert rl.retry_after(wait) == 1
    assert rl.acquire("a", now=0.6) == 0.0  # refilled
    assert rl.acquire("b", now=0.6) == 0.0  # per client


def test_rate_limiter_memory_is_bounded() -> None:
    rl = RateLimiter(1.0, max_clients=100)
    for i in range(1000):
        rl.acquire(f"10.0.{i // 256}.{i % 256}", now=float(i) / 1000)
    assert len(rl) == 100
    rl.acquire("late", now=500.0)  # idle buckets (over a minute) are forgotten
    assert len(rl) == 1


def test_web_metrics_render_prometheus_text() -> None:
    m = WebMetrics("x")
    c = m.counter("things", "things", ("route", "status"))
    h = m.histogram("lat_seconds", "latency", ("route",), (0.1, 1.0))
    c.labels(route="/a", status="200").inc()
    c.labels(route="/a", status="200").inc(2)
    c.labels(route='we"ird\\', status="500").inc()
    for value in (0.05, 0.5, 5.0):
        h.labels(route="/a").observe(value)
    text = m.render().decode()
    assert 'x_things_total{route="/a",status="200"} 3.0' in text
    assert 'x_things_total{route="we\\"ird\\\\",status="500"} 1.0' in text
    assert 'x_lat_seconds_bucket{le="0.1",route="/a"} 1.0' in text
    assert 'x_lat_seconds_bucket{le="1.0",route="/a"} 2.0' in text
    assert 'x_lat_seconds_bucket{le="+Inf",route="/a"} 3.0' in text
    assert 'x_lat_seconds_count{route="/a"} 3.0' in text
    assert 'x_lat_seconds_sum{route="/a"} 5.55' in text
    assert "_created" not in text


@pytest.mark.parametrize(
    ("provider", "runners", "threads", "cores", "want"),
    [
        ("cpu", 0, 0, 2, (2, 1)),
        ("cpu", 0, 0, 16, (4, 4)),
        ("cpu", 1, 0, 8, (1, 8)),
        ("cpu", 3, 2, 8, (3, 2)),
        ("cuda", 0, 0, 8, (2, 0)),
    ],
)
def test_runner_plan(
    make_settings: Any,
    provider: str,
    runners: int,
    threads: int,
    cores: int,
    want: tuple[int, int],
) -> None:
    settings = make_settings(
        infer__provider=provider, infer__threads=threads, deploy__remote__runners=runners
    )
    assert plan_runners(settings, cores=cores) == want


def test_cuda_without_the_gpu_wheel_falls_back_to_cpu_with_a_warning(make_settings: Any) -> None:
    buf = io.StringIO()
    model = load_model(make_settings(infer__provider="cuda"), StructuredLogger(None, console=buf))
    if model.provider == "CUDAExecutionProvider":  # pragma: no cover - a GPU host
        pytest.skip("onnxruntime-gpu with a GPU is installed here")
    assert model.provider == "CPUExecutionProvider" and model.runners == 2
    assert "no CUDAExecutionProvider" in buf.getvalue() and "vision-server[gpu]" in buf.getvalue()


@pytest.mark.parametrize(
    ("names", "bad"),
    [
        ({0: "car", 1: "person"}, None),
        ({0: "car", 1: "bus\x1b[2J"}, 1),
        ({0: "", 1: "car"}, 0),
        ({0: "car", 2: "c" * 201}, 2),
    ],
)
def test_class_names_must_be_what_vision_stats_accepts(
    names: dict[int, str], bad: int | None
) -> None:
    from vision_server.errors import ServerConfigError
    from vision_server.runtime import check_class_names

    if bad is None:
        check_class_names(names)
        return
    with pytest.raises(ServerConfigError, match=rf"class {bad} is named .*class_map"):
        check_class_names(names)
