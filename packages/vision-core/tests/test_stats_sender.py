"""The stats sender against a real HTTP server on loopback that can be told to fail."""

from __future__ import annotations

import io
import json
import random
import socket
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.fake_stats import FakeStats
from tests.fixtures.services import STATS_KEY
from vision_core.config import PipelineConfig
from vision_core.errors import ConfigError
from vision_core.logging import StructuredLogger
from vision_core.net.retry import RETRY_AFTER_CAP_SEC, parse_retry_after
from vision_core.stats import Outbox, StatsRecorder, StatsSender, stats_api_key
from vision_core.stats.outbox import Event
from vision_core.types import StatsEvent, make_stats_event

KEY = STATS_KEY


def _event(i: int, event_id: str | None = None) -> StatsEvent:
    return make_stats_event(
        source_id="cam-1",
        mode="stream",
        frame_index=i,
        latency_ms=2.0,
        detections=[],
        event_id=event_id or f"ev-{i:05d}",
    )


SenderFactory = Callable[..., StatsSender]


@pytest.fixture
def make_sender(tmp_path: Path) -> Iterator[SenderFactory]:
    senders: list[StatsSender] = []

    def make(url: str, outbox: Outbox | None = None, **kwargs: Any) -> StatsSender:
        box = outbox or Outbox(tmp_path / f"o{len(senders)}.db")
        opts: dict[str, Any] = {
            "api_key": KEY,
            "batch_size": 10,
            "base_backoff_sec": 0.02,
            "max_backoff_sec": 0.1,
            "linger_sec": 0.0,
            "idle_poll_sec": 0.05,
            "timeout_sec": 5.0,
            "rng": random.Random(0),
        }
        opts.update(kwargs)
        sender = StatsSender(box, url, **opts)
        senders.append(sender)
        return sender

    try:
        yield make
    finally:
        for s in senders:
            s.close()
            s.outbox.close()


def test_delivers_everything_in_batches_with_the_key(
    fake_stats: FakeStats, make_sender: SenderFactory
) -> None:
    sender = make_sender(fake_stats.url)
    sender.outbox.put([_event(i) for i in range(35)])
    sender.start().notify()
    assert sender.flush(10)
    assert sorted(fake_stats.received) == [f"ev-{i:05d}" for i in range(35)]
    assert max(n for _, n, _ in fake_stats.requests) == 10
    assert all(h["X-API-Key"] == KEY for _, _, h in fake_stats.requests)
    assert sender.pending() == 0 and sender.sent_total == 35
    assert sender.outbox.last_error is None


def test_interleaved_kinds_go_in_full_batches_each_once_in_order_of_capture(
    fake_stats: FakeStats, make_sender: SenderFactory, interleaved_kinds: list[Event]
) -> None:
    """A batch takes every event of the oldest event's kind in the window, not only the
    leading run of that kind: frames and crossings alternating still go 10 at a time."""
    sender = make_sender(fake_stats.url)  # batch_size 10
    sender.outbox.put(interleaved_kinds)
    sender.start().notify()
    assert sender.flush(10)
    sizes = [n for _, n, _ in fake_stats.requests]
    assert sizes == [10, 10, 10, 10, 10, 10, 1, 10, 10]  # not 81 batches of one
    ids = list(fake_stats.received)  # in order of arrival
    assert sum(sizes) == len(ids) == sender.sent_total == 81  # each event once
    assert [i for i in ids if i.startswith("ev-")] == [f"ev-{i:05d}" for i in range(40)]
    assert [i for i in ids if i.startswith("x-")] == [f"x-{i:05d}" for i in range(40)]
    starts = [sum(sizes[:k]) for k in range(len(sizes))]
    assert all(
        len({i[:2] for i in ids[a : a + n]}) == 1 for a, n in zip(starts, sizes, strict=True)
    )
    assert sender.outbox.pending() == 0


def test_a_short_batch_does_not_linger_while_a_full_window_waits(
    fake_stats: FakeStats, make_sender: SenderFactory, interleaved_kinds: list[Event]
) -> None:
    """The lone zone event goes alone, at once: waiting cannot grow its batch when a full
    window of other events is queued behind it."""
    sender = make_sender(fake_stats.url, linger_sec=30.0)
    sender.outbox.put([*interleaved_kinds, *(_event(i, f"late-{i:03d}") for i in range(40))])
    started = time.monotonic()
    sender.start().notify()
    while sender.outbox.pending() and time.monotonic() - started < 60:
        time.sleep(0.01)
    assert sender.outbox.pending() == 0
    assert time.monotonic() - started < 15.0  # no 30 s linger, on a loaded machine too
    assert [n for _, n, _ in fake_stats.requests] == [10] * 6 + [1] + [10] * 6


def test_a_refused_event_among_interleaved_kinds_is_the_only_dead_letter(
    fake_stats: FakeStats, make_sender: SenderFactory, interleaved_kinds: list[Event]
) -> None:
    fake_stats.reject_ids = {"x-00006"}
    sender = make_sender(fake_stats.url)
    sender.outbox.put(interleaved_kinds)
    sender.start().notify()
    assert sender.flush(10)
    ids = list(fake_stats.received)
    assert len(ids) == 80 and "x-00006" not in ids
    assert [i for i in ids if i.startswith("x-")] == [f"x-{i:05d}" for i in range(40) if i != 6]
    assert [d.event_id for d in sender.outbox.dead_letters()] == ["x-00006"]


def test_503_with_retry_after_is_honoured_and_nothing_is_lost(
    fake_stats: FakeStats, make_sender: SenderFactory
) -> None:
    fake_stats.script = [("status", 503, {"Retry-After": "1"})] * 2
    sender = make_sender(fake_stats.url)
    sender.outbox.put([_event(i) for i in range(5)])
    sender.start().notify()
    deadline = time.monotonic() + 10
    while sender.pending() and time.monotonic() < deadline:  # counters final at 0
        time.sleep(0.02)
    times = [t for t, _, _ in fake_stats.requests]
    assert len(times) == 3
    assert times[1] - times[0] >= 0.95 and times[2] - times[1] >= 0.95  # not 0.02 s backoff
    assert sorted(fake_stats.received) == [f"ev-{i:05d}" for i in range(5)]
    assert sender.failures_total == 2 and sender.consecutive_failures == 0


def test_dropped_connections_and_timeouts_are_retried(
    fake_stats: FakeStats, make_sender: SenderFactory
) -> None:
    fake_stats.script = [("drop",), ("drop",), ("hang", 1.0), ("status", 500, {})]
    sender = make_sender(fake_stats.url, timeout_sec=0.3)
    sender.outbox.put([_event(i) for i in range(3)])
    sender.start().notify()
    assert sender.flush(10)
    assert sorted(fake_stats.received) == ["ev-00000", "ev-00001", "ev-00002"]
    assert sender.failures_total >= 4


def test_an_outage_never_slows_the_producer_and_loses_nothing(
    fake_stats: FakeStats, make_sender: SenderFactory, tmp_path: Path
) -> None:
    with socket.socket() as sock:  # a port where nothing listens
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}/api/v1/stats/events"
    log_buf = io.StringIO()
    box = Outbox(tmp_path / "shared.db")
    down = make_sender(
        dead, box, logger=StructuredLogger(None, console=log_buf), max_backoff_sec=0.5
    )
    down.start()
    slowest = 0.0
    for i in range(200):
        t0 = time.perf_counter()
        box.put([_event(i)])
        down.notify()
        slowest = max(slowest, time.perf_counter() - t0)
    assert slowest < 0.25
    assert not down.flush(0.3)
    assert not down.close()
    assert box.pending() == 200 and "cannot reach" in (box.last_error or "")
    assert log_buf.getvalue().count("stats not delivered") <= 2  # repeats are not logged
    up = make_sender(fake_stats.url, box)  # the service is back (a restart, a new sender)
    up.start()
    assert up.flush(10)
    assert len(fake_stats.received) == 200


def test_a_hanging_service_does_not_block_put(
    fake_stats: FakeStats, make_sender: SenderFactory
) -> None:
    fake_stats.script = [("hang", 2.0)]
    sender = make_sender(fake_stats.url, timeout_sec=5)
    sender.outbox.put([_event(0)])
    sender.start().notify()
    assert fake_stats.arrived.wait(10)  # the sender is inside its POST now
    t0 = time.perf_counter()
    for i in range(1, 50):
        sender.outbox.put([_event(i)])
        sender.notify()
    assert time.perf_counter() - t0 < 1.0
    assert sender.flush(10)
    assert len(fake_stats.received) == 50


def test_a_refused_event_is_isolated_and_set_aside_as_a_dead_letter(
    fake_stats: FakeStats, make_sender: SenderFactory
) -> None:
    fake_stats.reject_ids = {"ev-00006"}
    log_buf = io.StringIO()
    sender = make_sender(fake_stats.url, logger=StructuredLogger(None, console=log_buf))
    sender.outbox.put([_event(i) for i in range(10)])
    sender.start().notify()
    assert sender.flush(10)
    assert sorted(fake_stats.received) == [f"ev-{i:05d}" for i in range(10) if i != 6]
    assert sender.dead_letters_total == 1
    (dead,) = sender.outbox.dead_letters()
    assert (dead.event_id, dead.status, dead.reason) == ("ev-00006", 422, "invalid event ev-00006")
    assert json.loads(dead.payload)["frame_index"] == 6  # the event itself, kept whole
    assert "refused event ev-00006 (422): invalid event ev-00006" in log_buf.getvalue()


def test_a_5xx_that_follows_one_event_is_isolated_and_the_rest_delivered(
    fake_stats: FakeStats, make_sender: SenderFactory
) -> None:
    """An event the service cannot store (it answers 500 for every batch holding it) would
    block the outbox for ever: it is isolated by halving, confirmed with the next event
    alone as a control, and set aside; every other event is delivered, in order."""
    fake_stats.fault_ids = {"ev-00013"}
    sender = make_sender(fake_stats.url, batch_size=16, base_backoff_sec=0.01, isolate_after=2)
    sender.outbox.put([_event(i) for i in range(40)])
    sender.start().notify()
    assert sender.flush(30)
    assert sorted(fake_stats.received) == [f"ev-{i:05d}" for i in range(40) if i != 13]
    (dead,) = sender.outbox.dead_letters()
    assert (dead.event_id, dead.status) == ("ev-00013", 500)
    assert "only this event fails" in dead.reason
    assert sender.pending() == 0 and sender.dead_letters_total == 1


def test_a_service_that_fails_everything_sets_nothing_aside(
    fake_stats: FakeStats, make_sender: SenderFactory
) -> None:
    """500 for every event is an outage, not a poison event: the control fails too, so
    nothing becomes a dead letter; once the service is fixed everything is delivered."""
    fake_stats.fault_all = True
    sender = make_sender(fake_stats.url, batch_size=8, base_backoff_sec=0.01,
                         max_backoff_sec=0.05, isolate_after=2)  # fmt: skip
    sender.outbox.put([_event(i) for i in range(20)])
    sender.start().notify()
    deadline = time.monotonic() + 30
    while len(fake_stats.requests) < 40 and time.monotonic() < deadline:
        fake_stats.arrived.wait(1)
        fake_stats.arrived.clear()
    assert len(fake_stats.requests) >= 40  # isolation and controls were tried, and failed
    assert sender.outbox.dead_count() == 0 and sender.outbox.pending() == 20
    fake_stats.fault_all = False
    assert sender.flush(30)
    assert len(fake_stats.received) == 20 and sender.dead_letters_total == 0


def test_a_wrong_key_keeps_the_events_and_says_why(
    fake_stats: FakeStats, make_sender: SenderFactory
) -> None:
    sender = make_sender(fake_stats.url, api_key="wrong-key-zzz")
    sender.outbox.put([_event(1)])
    sender.start().notify()
    assert not sender.flush(0.5)
    assert sender.outbox.pending() == 1 and not fake_stats.received
    assert "refused the API key (401)" in (sender.outbox.last_error or "")
    assert "stats.api_key_env" in (sender.outbox.last_error or "")


def test_backoff_is_exponential_jittered_and_capped(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.db") as box:
        sender = StatsSender(
            box,
            "http://127.0.0.1:9/x",
            base_backoff_sec=0.5,
            max_backoff_sec=8.0,
            rng=random.Random(1),
        )
        delays = [sender._fail("down", None) for _ in range(10)]
        for n, d in enumerate(delays, start=1):
            cap = min(8.0, 0.5 * 2 ** (n - 1))
            assert cap / 2 <= d <= cap
        assert len({round(d, 6) for d in delays[5:]}) > 1  # jittered at the cap
        assert sender._fail("down", 20.0) == 20.0  # Retry-After above the cap is honoured
        assert sender._fail("down", parse_retry_after("1e9")) == RETRY_AFTER_CAP_SEC


def test_parse_retry_after() -> None:
    now = time.time()
    later = datetime.fromtimestamp(now, UTC) + timedelta(seconds=30)
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(" 1.5 ") == 1.5
    assert parse_retry_after("-3") == 0.0
    assert parse_retry_after(format_datetime(later, usegmt=True), now=now) == pytest.approx(
        30, abs=1
    )
    for bad in (None, "", "soon", "Mon, 99 Foo 2024"):
        assert parse_retry_after(bad) is None


def test_recorder_sends_the_stats_key_from_the_environment(tmp_path: Path) -> None:
    cfg = PipelineConfig()
    sink = cfg.deploy.stats
    key = stats_api_key(cfg, environ={cfg.stats.api_key_env: KEY})
    recorder = StatsRecorder.open(tmp_path / "o.db", sink, api_key=key)
    try:
        sender = recorder.sender
        assert sender is not None and sender.running
        assert sender._http._client.headers["X-API-Key"] == KEY
        assert sender.batch_size == sink.batch_size
        assert sender.max_backoff_sec == sink.max_backoff_sec
        assert recorder.flush_timeout_sec == sink.flush_timeout_sec
    finally:
        recorder.close(0)
    bad = sink.__class__(endpoint="ftp://stats/x")
    with pytest.raises(ConfigError, match=r"deploy\.stats\.endpoint: .*http"):
        StatsRecorder.open(tmp_path / "o2.db", bad)
