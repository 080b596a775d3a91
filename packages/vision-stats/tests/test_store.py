"""The store contract, run on SQLite and on PostgreSQL alike."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from vision_stats.errors import InvalidQueryError
from vision_stats.store import LATEST_VERSION, StatsStore

from .conftest import run_in_threads

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def test_init_applies_every_migration_and_is_idempotent(store: StatsStore) -> None:
    assert store.schema_version() == LATEST_VERSION
    assert store.init() == LATEST_VERSION
    assert store.schema_version() == LATEST_VERSION


def test_a_batch_is_stored_and_read_back_unchanged(store: StatsStore, make_event) -> None:
    events = [make_event(i) for i in range(5)]
    result = store.insert(events)
    assert (result.received, result.stored, result.duplicates) == (5, 5, 0)
    assert result.stored_ids == [e.event_id for e in events]
    assert store.recent(10) == list(reversed(events))  # newest first, every field intact


def test_the_same_batch_twice_counts_once(store: StatsStore, make_event) -> None:
    events = [make_event(i) for i in range(20)]
    store.insert(events)
    again = store.insert(events)
    assert (again.stored, again.duplicates) == (0, 20)
    assert again.duplicate_ids == [e.event_id for e in events]
    ov = store.overview()
    assert ov.events_total == 20
    assert ov.detections_total == sum(e.detections_total for e in events)


def test_a_repeat_inside_one_batch_is_a_duplicate(store: StatsStore, make_event) -> None:
    a, b = make_event(1), make_event(2)
    result = store.insert([a, b, a])
    assert result.stored_ids == [a.event_id, b.event_id]
    assert result.duplicate_ids == [a.event_id]
    assert store.overview().events_total == 2


def test_a_partly_known_batch_stores_only_the_new_events(store: StatsStore, make_event) -> None:
    store.insert([make_event(i) for i in range(3)])
    result = store.insert([make_event(i) for i in range(1, 6)])
    assert result.stored_ids == [make_event(i).event_id for i in range(3, 6)]
    assert result.duplicate_ids == [make_event(i).event_id for i in range(1, 3)]
    assert store.overview().events_total == 6
    assert sum(c.detections for c in store.class_totals()) == sum(
        sum(make_event(i).counts_by_class.values()) for i in range(6)
    )


def test_one_event_alone_is_accepted(store: StatsStore, make_event) -> None:
    assert store.insert(make_event(7)).stored_ids == [make_event(7).event_id]


def test_overview_sums_events_detections_latency_and_sources(store: StatsStore, make_event) -> None:
    events = [make_event(i, source=f"cam-{i % 3}", latency=float(i)) for i in range(30)]
    store.insert(events)
    ov = store.overview()
    assert ov.events_total == 30
    assert ov.detections_total == sum(e.detections_total for e in events)
    assert ov.avg_latency_ms == pytest.approx(sum(range(30)) / 30)
    assert ov.source_count == 3
    assert ov.last_event_ts_utc == max(e.ts_utc for e in events)


def test_overview_of_an_empty_store(store: StatsStore) -> None:
    ov = store.overview()
    assert (ov.events_total, ov.detections_total, ov.source_count) == (0, 0, 0)
    assert ov.avg_latency_ms is None and ov.last_event_ts_utc is None
    assert store.class_totals() == [] and store.sources() == [] and store.recent() == []


def test_class_totals_rank_by_detections_then_name(store: StatsStore, make_event) -> None:
    store.insert(
        [
            make_event(1, counts={"car": 3, "person": 1}),
            make_event(2, counts={"bike": 2, "car": 1}),
            make_event(3, counts={"person": 3, "dog": 0}),
        ]
    )
    totals = [(c.class_name, c.detections) for c in store.class_totals()]
    assert totals == [("car", 4), ("person", 4), ("bike", 2)]  # dog 0: no detection
    assert [c.class_name for c in store.class_totals(limit=1)] == ["car"]


def test_filters_by_source(store: StatsStore, make_event) -> None:
    store.insert([make_event(i, source="a", counts={"car": 1}) for i in range(4)])
    store.insert([make_event(i, source="b", counts={"bus": 2}) for i in range(3)])
    assert store.overview(source="b").events_total == 3
    assert store.overview(source="b").source_count == 1
    assert [(c.class_name, c.detections) for c in store.class_totals(source="b")] == [("bus", 6)]
    assert {e.source_id for e in store.recent(50, source="a")} == {"a"}
    assert store.overview(source="nobody").events_total == 0


@pytest.mark.parametrize(
    ("since_s", "until_s"),
    [
        (0, 3600),  # everything
        (61, 3600),  # starts inside a minute
        (30, 95),  # less than two minutes, both edges partial
        (125, 130),  # inside one minute
        (120, 240),  # whole minutes only
        (None, 200),
        (200, None),
    ],
)
def test_time_range_totals_are_exact_at_any_edge(
    store: StatsStore, make_event, since_s: int | None, until_s: int | None
) -> None:
    # one event every 7 s for 10 minutes, two sources
    events = [
        make_event(i, source=f"cam-{i % 2}", ts=T0 + timedelta(seconds=7 * i), latency=float(i))
        for i in range(86)
    ]
    store.insert(events)
    since = T0 + timedelta(seconds=since_s) if since_s is not None else None
    until = T0 + timedelta(seconds=until_s) if until_s is not None else None
    inside = [
        e
        for e in events
        if (since is None or e.ts_utc >= since) and (until is None or e.ts_utc < until)
    ]
    ov = store.overview(since=since, until=until)
    assert ov.events_total == len(inside)
    assert ov.detections_total == sum(e.detections_total for e in inside)
    assert ov.source_count == len({e.source_id for e in inside})
    assert ov.last_event_ts_utc == max(e.ts_utc for e in inside)
    assert ov.avg_latency_ms == pytest.approx(sum(e.latency_ms for e in inside) / len(inside))
    expected: dict[str, int] = {}
    for e in inside:
        for name, n in e.counts_by_class.items():
            expected[name] = expected.get(name, 0) + n
    got = {c.class_name: c.detections for c in store.class_totals(since=since, until=until)}
    assert got == expected
    assert len(store.recent(1000, since=since, until=until)) == len(inside)


def test_since_after_until_is_rejected(store: StatsStore) -> None:
    with pytest.raises(InvalidQueryError, match=r"since .* must be before until"):
        store.overview(since=T0, until=T0 - timedelta(hours=1))


def test_series_per_minute_counts_classes_and_latency_percentiles(
    store: StatsStore, make_event
) -> None:
    # minute 0: 20 events, latency 1..20 ms; minute 2: 1 event; minute 1 empty
    events = [
        make_event(i, ts=T0 + timedelta(seconds=i), latency=float(i + 1), counts={"car": 1})
        for i in range(20)
    ]
    events.append(
        make_event(99, ts=T0 + timedelta(minutes=2, seconds=5), latency=7.0, counts={"bus": 2})
    )
    store.insert(events)
    s = store.series(bucket="minute", since=T0, until=T0 + timedelta(minutes=3))
    assert [b.ts_utc for b in s.buckets] == [T0 + timedelta(minutes=m) for m in range(3)]
    assert [b.events for b in s.buckets] == [20, 0, 1]
    assert [b.detections for b in s.buckets] == [20, 0, 2]
    assert [b.by_class for b in s.buckets] == [{"car": 20}, {}, {"bus": 2}]
    first = s.buckets[0]
    assert (first.p50_latency_ms, first.p95_latency_ms) == (10.0, 19.0)  # nearest rank
    assert first.avg_latency_ms == pytest.approx(10.5)
    assert s.buckets[1].p50_latency_ms is None and s.buckets[1].avg_latency_ms is None
    assert (s.buckets[2].p50_latency_ms, s.buckets[2].p95_latency_ms) == (7.0, 7.0)
    assert s.classes == ["car", "bus"]


def test_series_per_hour_and_by_source(store: StatsStore, make_event) -> None:
    store.insert([make_event(i, source="a", ts=T0 + timedelta(minutes=40 * i)) for i in range(6)])
    store.insert(
        [make_event(i, source="b", ts=T0 + timedelta(minutes=30)) for i in range(100, 103)]
    )
    s = store.series(bucket="hour", since=T0, until=T0 + timedelta(hours=4))
    assert [b.events for b in s.buckets] == [2 + 3, 1, 2, 1]  # a at minutes 0,40|80|120,160|200
    only_b = store.series(bucket="hour", since=T0, until=T0 + timedelta(hours=4), source="b")
    assert [b.events for b in only_b.buckets] == [3, 0, 0, 0]


def test_series_default_window_ends_now(store: StatsStore, make_event) -> None:
    now = datetime(2024, 5, 1, 12, 30, 20, tzinfo=UTC)
    store.insert(make_event(1, ts=now - timedelta(seconds=10)))
    s = store.series(now=now)
    assert len(s.buckets) == 60
    assert s.until_utc == datetime(2024, 5, 1, 12, 31, tzinfo=UTC)
    assert s.buckets[-1].events == 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"bucket": "day"}, "bucket: expected 'minute' or 'hour'"),
        ({"since": T0, "until": T0 + timedelta(days=3)}, "more than 1500"),
        ({"since": T0, "until": T0 - timedelta(minutes=5)}, "since must be before until"),
    ],
)
def test_series_rejects_bad_requests(store: StatsStore, kwargs: dict, message: str) -> None:
    with pytest.raises(InvalidQueryError, match=message):
        store.series(**kwargs)


def test_sources_show_last_seen_to_spot_a_silent_device(store: StatsStore, make_event) -> None:
    now = T0 + timedelta(hours=1)
    store.insert(
        [make_event(i, source="busy", ts=now - timedelta(seconds=5 + i)) for i in range(3)]
    )
    store.insert([make_event(i, source="silent", ts=T0 + timedelta(seconds=i)) for i in range(2)])
    srcs = store.sources(now=now)
    assert [s.source_id for s in srcs] == ["silent", "busy"]  # longest silent first
    silent, busy = srcs
    assert silent.last_seen_utc == T0 + timedelta(seconds=1)
    assert silent.seconds_since_last == pytest.approx(3599)
    assert (busy.events, busy.seconds_since_last) == (3, pytest.approx(5))


def test_prune_deletes_old_events_and_takes_them_off_every_total(
    store: StatsStore, make_event
) -> None:
    old = [make_event(i, source="old", ts=T0 - timedelta(days=40, seconds=i)) for i in range(5)]
    mixed = [make_event(i, source="mixed", ts=T0 - timedelta(days=35)) for i in range(10, 13)]
    new = [
        make_event(i, source="mixed", ts=T0 - timedelta(days=1, seconds=i)) for i in range(20, 24)
    ]
    store.insert(old + mixed + new)
    result = store.prune(timedelta(days=30), now=T0)
    assert result.events_deleted == 8
    assert result.cutoff_utc == T0 - timedelta(days=30)
    ov = store.overview()
    assert ov.events_total == 4
    assert ov.detections_total == sum(e.detections_total for e in new)
    assert [s.source_id for s in store.sources()] == ["mixed"]
    expected: dict[str, int] = {}
    for e in new:
        for k, n in e.counts_by_class.items():
            expected[k] = expected.get(k, 0) + n
    assert {c.class_name: c.detections for c in store.class_totals()} == expected
    assert store.overview(since=T0 - timedelta(days=100)).events_total == 4
    assert (
        sum(
            b.events
            for b in store.series(bucket="hour", since=T0 - timedelta(days=2), until=T0).buckets
        )
        == 4
    )
    assert store.prune(timedelta(days=30), now=T0).events_deleted == 0


def test_prune_needs_a_positive_age(store: StatsStore) -> None:
    with pytest.raises(InvalidQueryError, match="positive duration"):
        store.prune(timedelta(0))


@pytest.mark.parametrize("limit", [0, 10_001])
def test_limits_out_of_range_are_rejected(store: StatsStore, limit: int) -> None:
    with pytest.raises(InvalidQueryError, match=r"limit: expected 1\.\.10000"):
        store.recent(limit)


def test_concurrent_writers_with_overlapping_batches_count_each_event_once(
    store: StatsStore, make_event
) -> None:
    # 4 threads; each sends 10 batches that overlap the other threads' batches
    def writer(k: int) -> None:
        for b in range(10):
            store.insert(
                [
                    make_event(i, source=f"s{i % 3}")
                    for i in range(b * 20 + k * 5, b * 20 + k * 5 + 30)
                ]
            )

    run_in_threads(writer, 4)
    expected_ids = {
        make_event(i).event_id.split("-")[-1]
        for b in range(10)
        for k in range(4)
        for i in range(b * 20 + k * 5, b * 20 + k * 5 + 30)
    }
    assert store.overview().events_total == len(expected_ids)
    assert sum(s.events for s in store.sources()) == len(expected_ids)
    series = store.series(bucket="hour", since=T0, until=T0 + timedelta(hours=2))
    assert sum(b.events for b in series.buckets) == len(expected_ids)
