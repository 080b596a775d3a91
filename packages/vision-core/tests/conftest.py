"""Builders shared by vision-core's tests (the repository-wide ones are in tests/fixtures)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from vision_core.stats.outbox import Event
from vision_core.types import CrossingEvent, ZoneEvent, make_stats_event


@pytest.fixture
def interleaved_kinds() -> list[Event]:
    """40 frame events (ev-00000..) and 40 crossings (x-00000..), alternating, with one
    zone event (z-00000) after the 21st pair: what a tracking edge puts in its outbox."""
    ts = datetime(2026, 1, 1, tzinfo=UTC)
    zone = ZoneEvent(
        event_id="z-00000", ts_utc=ts, source_id="cam-1", zone="dock", action="enter",
        class_name="car", track_id=3,
    )  # fmt: skip
    events: list[Event] = []
    for i in range(40):
        frame = make_stats_event(
            source_id="cam-1", mode="stream", frame_index=i, latency_ms=2.0, detections=[],
            event_id=f"ev-{i:05d}",
        )  # fmt: skip
        crossing = CrossingEvent(
            event_id=f"x-{i:05d}", ts_utc=ts + timedelta(seconds=i), source_id="cam-1",
            line="gate", direction="in", class_name="car", track_id=i,
        )  # fmt: skip
        events += [frame, crossing] + ([zone] if i == 20 else [])
    return events
