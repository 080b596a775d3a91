"""Tracking events in the store (crossings, zone events, interval summaries), on SQLite and
PostgreSQL, against data whose answers are worked out by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from vision_stats.errors import InvalidQueryError
from vision_stats.store import StatsStore

from .conftest import crossing, run_in_threads, summary, zone_event

H10 = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
H11 = H10 + timedelta(hours=1)
H12 = H10 + timedelta(hours=2)
MIN = timedelta(minutes=1)


def _gate_traffic() -> list:
    """gate on cam-01: hour 10: 7 cars in, 3 out, 1 person in; hour 11: 2 cars in.
    exit on cam-02: hour 11: 4 trucks out."""
    events = [crossing(H10 + i * 7 * MIN, "in") for i in range(7)]
    events += [crossing(H10 + (i * 11 + 3) * MIN, "out") for i in range(3)]
    events += [crossing(H10 + 30 * MIN, "in", cls="person")]
    events += [crossing(H11 + 5 * MIN, "in"), crossing(H11 + 59 * MIN, "in")]
    events += [
        crossing(H11 + i * MIN, "out", line="exit", cls="truck", source="cam-02") for i in range(4)
    ]
    return events


def _counts(store: StatsStore, **kw) -> list[tuple]:
    series = store.track_counts(**kw)
    return [(r.ts_utc, r.line, r.class_name, r.in_, r.out) for r in series.rows]


def test_counts_per_line_class_and_direction_per_hour(store: StatsStore) -> None:
    result = store.insert_track_events(_gate_traffic())
    assert (result.received, result.stored, result.duplicates) == (17, 17, 0)
    assert _counts(store, since=H10, until=H12, source="cam-01") == [
        (H10, "gate", "car", 7, 3),
        (H10, "gate", "person", 1, 0),
        (H11, "gate", "car", 2, 0),
    ]
    series = store.track_counts(since=H10, until=H12)
    assert (series.since_utc, series.until_utc, series.bucket) == (H10, H12, "hour")
    assert series.lines == ["exit", "gate"]
    assert series.classes == ["car", "truck", "person"]  # most crossings first
    assert [(t.line, t.class_name, t.in_, t.out) for t in series.totals] == [
        ("exit", "truck", 0, 4),
        ("gate", "car", 9, 3),
        ("gate", "person", 1, 0),
    ]
    # a line filter, a day bucket, a range that only holds hour 11
    assert _counts(store, since=H10, until=H12, line="exit") == [(H11, "exit", "truck", 0, 4)]
    day = H10.replace(hour=0)
    assert _counts(store, bucket="day", since=H10, until=H12, line="gate") == [
        (day, "gate", "car", 9, 3),
        (day, "gate", "person", 1, 0),
    ]
    assert _counts(store, since=H11, until=H12, source="cam-01") == [(H11, "gate", "car", 2, 0)]


def test_minute_buckets_come_from_the_raw_crossings(store: StatsStore) -> None:
    store.insert_track_events(_gate_traffic())
    rows = _counts(store, bucket="minute", since=H10, until=H10 + 15 * MIN, source="cam-01")
    assert rows == [
        (H10, "gate", "car", 1, 0),
        (H10 + 3 * MIN, "gate", "car", 0, 1),
        (H10 + 7 * MIN, "gate", "car", 1, 0),
        (H10 + 14 * MIN, "gate", "car", 1, 1),  # 14: in (2*7) and out (11+3)
    ]
    # a range not on bucket edges is widened to whole buckets
    series = store.track_counts(bucket="minute", since=H10 + 30 * MIN + timedelta(seconds=5),
                                until=H10 + 31 * MIN)  # fmt: skip
    assert series.since_utc == H10 + 30 * MIN and series.until_utc == H10 + 31 * MIN
    assert [(r.class_name, r.in_) for r in series.rows] == [("person", 1)]


def test_default_window_is_the_last_24_hours_to_now(store: StatsStore) -> None:
    store.insert_track_events(_gate_traffic())
    now = H12 + timedelta(minutes=20)
    series = store.track_counts(now=now)
    assert series.until_utc == H12 + timedelta(hours=1)
    assert series.since_utc == series.until_utc - timedelta(hours=24)
    assert sum(t.in_ + t.out for t in series.totals) == 17


def test_the_same_batch_twice_is_stored_once_and_kinds_may_be_mixed(store: StatsStore) -> None:
    batch = [
        crossing(H10, "in", event_id="same-1"),
        zone_event(H10, "enter", event_id="z-1", occupancy=1),
        summary(H10, detections={"car": 4}, new_tracks={"car": 1}, event_id="s-1"),
        crossing(H10, "in", event_id="same-1"),  # a repeat inside the batch
    ]
    first = store.insert_track_events(batch)
    assert (first.received, first.stored, first.duplicates) == (4, 3, 1)
    assert first.stored_ids == ["same-1", "z-1", "s-1"] and first.duplicate_ids == ["same-1"]
    second = store.insert_track_events(batch)
    assert (second.stored, second.duplicates) == (0, 4)
    assert _counts(store, since=H10, until=H11) == [(H10, "gate", "car", 1, 0)]
    assert store.zone_occupancy()[0].by_class == {"person": 1}
    assert store.summary_series(since=H10, until=H11).buckets[0].new_tracks_by_class == {"car": 1}


def _lobby() -> list:
    """lobby on cam-01: 3 people enter (10:00, 10:10, 10:20), the first leaves at 10:30
    (30 min), the second is lost at 11:15 (65 min); a car enters at 10:40."""
    return [
        zone_event(H10, "enter", occupancy=1),
        zone_event(H10 + 10 * MIN, "enter", occupancy=2),
        zone_event(H10 + 20 * MIN, "enter", occupancy=3),
        zone_event(H10 + 30 * MIN, "exit", dwell=1800.0, occupancy=2),
        zone_event(H10 + 40 * MIN, "enter", cls="car", occupancy=3),
        zone_event(H11 + 15 * MIN, "exit", dwell=3900.0, occupancy=2, lost=True),
        zone_event(H10, "enter", zone="dock", source="cam-02", cls="truck", occupancy=1),
    ]


def test_occupancy_now_is_enters_minus_exits_and_a_lost_track_leaves(store: StatsStore) -> None:
    store.insert_track_events(_lobby())
    lobby, dock = store.zone_occupancy()
    assert (lobby.source_id, lobby.zone, dock.source_id, dock.zone) == (
        "cam-01", "lobby", "cam-02", "dock",
    )  # fmt: skip
    assert lobby.by_class == {"person": 1, "car": 1} and lobby.occupancy == 2
    assert (lobby.enters, lobby.exits, lobby.lost_exits) == (4, 2, 1)
    assert lobby.reported_occupancy == 2 and lobby.last_event_utc == H11 + 15 * MIN
    assert dock.occupancy == 1 and dock.by_class == {"truck": 1}
    assert [z.zone for z in store.zone_occupancy(source="cam-02")] == ["dock"]
    assert store.zone_occupancy(zone="nowhere") == []
    # more exits than enters (an enter was lost on the way): 0, not negative
    store.insert_track_events([zone_event(H11, "exit", zone="dock", source="cam-02", cls="bus")])
    dock = store.zone_occupancy(source="cam-02")[0]
    assert dock.by_class == {"truck": 1} and dock.occupancy == 1


def test_occupancy_over_time_is_the_level_at_the_end_of_each_bucket(store: StatsStore) -> None:
    store.insert_track_events(_lobby())
    series = store.zone_series(since=H10 - timedelta(hours=1), until=H12, source="cam-01")
    assert series.buckets == [H10 - timedelta(hours=1), H10, H11]
    by_key = {(z.zone, z.class_name): z for z in series.zones}
    person, car = by_key[("lobby", "person")], by_key[("lobby", "car")]
    assert person.enters == [0, 3, 0] and person.exits == [0, 1, 1]
    assert person.lost_exits == [0, 0, 1]
    assert person.occupancy == [0, 2, 1] and car.occupancy == [0, 1, 1]
    assert person.mean_dwell_sec == [None, 1800.0, 3900.0]
    # a range that ends before the last events: worked back from now
    early = store.zone_series(bucket="minute", since=H10, until=H10 + 35 * MIN, source="cam-01")
    person = next(z for z in early.zones if z.class_name == "person")
    assert person.occupancy[0] == 1 and person.occupancy[10] == 2 and person.occupancy[20] == 3
    assert person.occupancy[29] == 3 and person.occupancy[30] == 2 and person.occupancy[-1] == 2
    assert sum(person.enters) == 3 and sum(person.exits) == 1
    # fleet-wide: summed over sources, per zone name and class
    fleet = store.zone_series(bucket="day", since=H10, until=H12)
    assert {(z.zone, z.class_name): z.occupancy for z in fleet.zones} == {
        ("dock", "truck"): [1], ("lobby", "car"): [1], ("lobby", "person"): [1],
    }  # fmt: skip


def test_dwell_statistics_per_zone_and_class(store: StatsStore) -> None:
    store.insert_track_events(_lobby())
    (person,) = store.dwell_stats(since=H10, until=H12)
    assert (person.zone, person.class_name, person.exits, person.lost_exits) == (
        "lobby", "person", 2, 1,
    )  # fmt: skip
    assert (person.mean_sec, person.p50_sec, person.p95_sec, person.max_sec) == (
        2850.0, 1800.0, 3900.0, 3900.0,
    )  # fmt: skip
    # nearest rank over 20 exits of 1..20 s: p50 = 10, p95 = 19
    store.insert_track_events(
        [zone_event(H11 + i * MIN, "exit", zone="hall", dwell=float(i + 1)) for i in range(20)]
    )
    (hall,) = store.dwell_stats(since=H11, until=H12, zone="hall")
    assert (hall.exits, hall.mean_sec, hall.p50_sec, hall.p95_sec, hall.max_sec) == (
        20, 10.5, 10.0, 19.0, 20.0,
    )  # fmt: skip
    assert store.dwell_stats(since=H12, until=H12 + timedelta(hours=1)) == []
    # default: the 24 hours before now
    assert (
        len(store.dwell_stats(now=H12)) == 2
        and store.dwell_stats(now=H12 + timedelta(days=2)) == []
    )


def test_interval_summaries_per_bucket(store: StatsStore) -> None:
    store.insert_track_events(
        [
            summary(H10, detections={"car": 100, "person": 5}, tracks={"car": 3, "person": 1},
                    new_tracks={"car": 3, "person": 1}),
            summary(H10 + MIN, detections={"car": 80}, tracks={"car": 3}, new_tracks={"car": 1}),
            summary(H10 + 2 * MIN, frames=450, detections={"car": 10}, tracks={"car": 1}),
            summary(H11, detections={"bus": 7}, tracks={"bus": 1}, new_tracks={"bus": 1}),
            summary(H10, source="cam-02", detections={"car": 1}, new_tracks={"car": 1}),
        ]
    )  # fmt: skip
    series = store.summary_series(since=H10, until=H12, source="cam-01")
    h10, h11 = series.buckets
    assert (h10.intervals, h10.frames) == (3, 2250)
    assert h10.detections_by_class == {"car": 190, "person": 5}
    assert h10.tracks_by_class == {"car": 7, "person": 1}
    assert h10.new_tracks_by_class == {"car": 4, "person": 1}
    assert (h11.intervals, h11.new_tracks_by_class) == (1, {"bus": 1})
    assert series.classes == ["car", "bus", "person"]
    minutes = store.summary_series(bucket="minute", since=H10, until=H10 + 5 * MIN)
    assert [b.intervals for b in minutes.buckets] == [2, 1, 1, 0, 0]  # cam-02 too
    assert [b.new_tracks_by_class for b in minutes.buckets[:3]] == [
        {"car": 4, "person": 1}, {"car": 1}, {},
    ]  # fmt: skip


def test_prune_cuts_tracking_rows_at_the_hour_and_takes_them_off_occupancy(
    store: StatsStore,
) -> None:
    store.insert_track_events(_gate_traffic() + _lobby())
    result = store.prune(timedelta(minutes=90), now=H12 + 20 * MIN)  # cutoff 10:50 -> 10:00 h
    assert result.track_cutoff_utc == H10 and result.track_events_deleted == 0
    result = store.prune(timedelta(minutes=30), now=H12 + 20 * MIN)  # cutoff 11:50 -> 11:00
    assert result.track_cutoff_utc == H11
    assert result.track_events_deleted == 11 + 5 + 1  # hour-10 crossings, lobby, dock
    assert _counts(store, since=H10, until=H12, source="cam-01") == [(H11, "gate", "car", 2, 0)]
    (lobby,) = store.zone_occupancy()  # dock: nothing left
    assert (lobby.enters, lobby.exits, lobby.by_class) == (0, 1, {})  # only the 11:15 exit


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"bucket": "week"}, "bucket: expected 'minute', 'hour' or 'day'"),
        ({"since": H12, "until": H10}, "must be before until"),
        ({"bucket": "minute", "since": H10 - timedelta(days=2), "until": H10}, "more than 1500"),
        ({"since": H12 + timedelta(days=1), "now": H12}, "is after until or now"),
    ],
)
def test_bad_ranges_are_refused_naming_the_parameter(
    store: StatsStore, kwargs: dict, message: str
) -> None:
    with pytest.raises(InvalidQueryError, match=message):
        store.track_counts(**kwargs)
    with pytest.raises(InvalidQueryError, match=message):
        store.zone_series(**kwargs)
    with pytest.raises(InvalidQueryError, match=message):
        store.summary_series(**kwargs)


def test_concurrent_writers_with_overlapping_batches_count_each_event_once(
    store: StatsStore,
) -> None:
    """4 threads send overlapping batches in different orders: every event is stored once
    and every rollup agrees (PostgreSQL: concurrent upserts of the same rollup rows)."""
    pool = [
        crossing(H10 + i * MIN, "in" if i % 3 else "out", source=f"cam-{i % 3}",
                 event_id=f"cx-{i:04d}")
        for i in range(120)
    ] + [
        zone_event(H10 + i * MIN, "enter" if i % 2 else "exit", source=f"cam-{i % 3}",
                   dwell=float(i), event_id=f"cz-{i:04d}")
        for i in range(120)
    ]  # fmt: skip
    stored: list[int] = []

    def writer(k: int) -> None:
        for b in range(8):
            batch = pool[(b * 30 + k * 7) % 240 :][:60]
            result = store.insert_track_events(batch[::-1] if k % 2 else batch)
            stored.append(result.stored)

    run_in_threads(writer, 4)
    sent = {
        ev.event_id
        for k in range(4)
        for b in range(8)
        for ev in pool[(b * 30 + k * 7) % 240 :][:60]
    }
    assert sum(stored) == len(sent)
    totals = store.track_counts(since=H10, until=H12).totals
    crossings = [ev for ev in pool[:120] if ev.event_id in sent]
    assert sum(t.in_ for t in totals) == sum(ev.direction == "in" for ev in crossings)
    assert sum(t.out for t in totals) == sum(ev.direction == "out" for ev in crossings)
    zones = [ev for ev in pool[120:] if ev.event_id in sent]
    occupancy = store.zone_occupancy()
    assert sum(z.enters for z in occupancy) == sum(ev.action == "enter" for ev in zones)
    assert sum(z.exits for z in occupancy) == sum(ev.action == "exit" for ev in zones)
