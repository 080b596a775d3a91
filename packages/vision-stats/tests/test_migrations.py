"""Versioned schema: applied at start, backfilled, never downgraded, safe to race."""

from __future__ import annotations

from datetime import timedelta

import pytest

from vision_stats.errors import SchemaVersionError
from vision_stats.store import LATEST_VERSION, open_store
from vision_stats.store.base import EVENT_COLUMNS, event_row

from .conftest import run_in_threads


def test_v1_rows_are_backfilled_into_the_v2_rollups(db_url: str, make_event) -> None:
    store = open_store(db_url, migrate=False)
    try:
        assert store.init(target_version=1) == 1
        events = [make_event(i, source=f"cam-{i % 2}") for i in range(40)]
        insert = store._q(
            f"INSERT INTO events ({', '.join(EVENT_COLUMNS)})"
            f" VALUES ({', '.join('?' * len(EVENT_COLUMNS))})"
        )
        store._transact(lambda cur: cur.executemany(insert, [event_row(e) for e in events]))
        assert store.init() == LATEST_VERSION
        ov = store.overview()
        assert ov.events_total == 40
        assert ov.detections_total == sum(e.detections_total for e in events)
        assert ov.last_event_ts_utc == max(e.ts_utc for e in events)
        expected: dict[str, int] = {}
        for e in events:
            for k, n in e.counts_by_class.items():
                expected[k] = expected.get(k, 0) + n
        assert {c.class_name: c.detections for c in store.class_totals()} == expected
        since = min(e.ts_utc for e in events)
        series = store.series(bucket="minute", since=since, until=since + timedelta(minutes=10))
        assert sum(b.events for b in series.buckets) == 40
        assert sum(sum(b.by_class.values()) for b in series.buckets) == sum(expected.values())
        assert [s.events for s in store.sources()] == [20, 20]
    finally:
        store.close()


def test_a_database_newer_than_the_code_is_refused(db_url: str) -> None:
    store = open_store(db_url)
    store._transact(
        lambda cur: cur.execute(
            store._q("INSERT INTO schema_migrations (version, name, applied_us) VALUES (?, ?, ?)"),
            (LATEST_VERSION + 7, "from the future", 0),
        )
    )
    store.close()
    with pytest.raises(SchemaVersionError, match=rf"schema version {LATEST_VERSION + 7}, newer"):
        open_store(db_url)


def test_services_starting_together_migrate_once(db_url: str) -> None:
    results: list[int] = []

    def start(_: int) -> None:
        store = open_store(db_url)
        results.append(store.schema_version())
        store.close()

    run_in_threads(start, 4)
    assert results == [LATEST_VERSION] * 4
    store = open_store(db_url)
    rows = store._fetch("SELECT version FROM schema_migrations ORDER BY version")
    store.close()
    assert [r[0] for r in rows] == list(range(1, LATEST_VERSION + 1))


def test_a_database_of_the_previous_schema_gains_the_tracking_tables(db_url: str) -> None:
    """A database as the release before tracking made it (schema 2, with events): opened by
    this code, it is migrated to 3 in place, keeps every event and total, and takes
    tracking events."""
    from .conftest import build_event, crossing, zone_event

    old = open_store(db_url, migrate=False)
    try:
        assert old.init(target_version=2) == 2
        old.insert([build_event(i, source=f"cam-{i % 3}") for i in range(30)])
        before = (old.overview(), old.class_totals(), old.sources())
    finally:
        old.close()
    store = open_store(db_url)
    try:
        assert store.schema_version() == LATEST_VERSION == 3
        assert (store.overview(), store.class_totals()) == before[:2]
        assert [s.source_id for s in store.sources()] == [s.source_id for s in before[2]]
        ts = build_event(0).ts_utc
        result = store.insert_track_events(
            [crossing(ts, "in"), crossing(ts, "out"), zone_event(ts, "enter")]
        )
        assert result.stored == 3
        totals = store.track_counts(since=ts, until=ts + timedelta(hours=1)).totals
        assert [(t.line, t.in_, t.out) for t in totals] == [("gate", 1, 1)]
        assert store.zone_occupancy()[0].occupancy == 1
        assert store.overview().events_total == 30  # the tracking events are not frames
        rows = store._fetch("SELECT version, name FROM schema_migrations ORDER BY version")
        assert [r[0] for r in rows] == [1, 2, 3] and "tracking" in rows[2][1]
    finally:
        store.close()
