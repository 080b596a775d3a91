"""Crossing / zone events and interval summaries: builders, wire format, bounds."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
import pytest

from tests.fixtures.tracks import Obs, batch
from vision_core.config import build_config
from vision_core.track.counting import SourceTracking
from vision_core.track.events import (
    IntervalSummariser,
    crossing_event,
    events_per_hour,
    zone_event,
)
from vision_core.track.lines import LineCrossing
from vision_core.track.tracker import DetectionArray
from vision_core.track.zones import ZoneTransition
from vision_core.types import (
    CrossingEvent,
    Detection,
    IntervalSummary,
    TrackEvent,
    ZoneEvent,
    to_json,
)

TS = 1_767_225_600.0  # 2026-01-01 00:00:00 UTC


def test_crossing_event_from_a_crossing_and_back_from_json() -> None:
    c = LineCrossing("gate", "in", 17, 1, "square", 40, TS + 2.5)
    ev = crossing_event(c, source_id="cam-1", model="shapes-v3")
    assert ev.ts_utc == datetime(2026, 1, 1, 0, 0, 2, 500000, tzinfo=UTC)
    assert (ev.line, ev.direction, ev.class_name, ev.track_id, ev.frame_index) == (
        "gate",
        "in",
        "square",
        17,
        40,
    )
    raw = to_json(ev)
    assert b'"kind":"crossing"' in raw
    assert msgspec.json.decode(raw, type=TrackEvent) == ev
    assert crossing_event(c, source_id="cam-1").event_id != ev.event_id  # one id each


def test_zone_event_from_a_transition() -> None:
    z = ZoneTransition("dock", "exit", 4, 0, "circle", 90, TS, 12.5, 0, lost=True)
    ev = zone_event(z, source_id="cam-1")
    assert isinstance(msgspec.json.decode(to_json(ev), type=TrackEvent), ZoneEvent)
    assert (ev.zone, ev.action, ev.dwell_sec, ev.occupancy, ev.lost) == (
        "dock",
        "exit",
        12.5,
        0,
        True,
    )


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("track_id", -1, "Expected `int` >= 0 - at `$.track_id`"),
        ("line", "", "Expected `str` of length >= 1 - at `$.line`"),
        ("direction", "up", "Invalid enum value 'up' - at `$.direction`"),
        ("model", "m" * 513, "Expected `str` of length <= 512 - at `$.model`"),
        ("class_name", "bad\x1b[2J", "Expected `str` matching regex"),
        ("ts_utc", "2026-01-01T00:00:00", "Expected `datetime` with a timezone component"),
        ("extra", 1, "Object contains unknown field `extra`"),
    ],
)
def test_event_fields_are_bounded(field: str, value: object, message: str) -> None:
    good = msgspec.to_builtins(
        crossing_event(LineCrossing("gate", "in", 1, 0, "circle", 0, TS), source_id="s")
    )
    with pytest.raises(msgspec.ValidationError, match=message.replace("$", r"\$")):
        msgspec.convert({**good, field: value}, type=CrossingEvent)


def _dets(*names: str) -> list[Detection]:
    return [
        Detection(class_id=i % 3, class_name=n, score=0.9, xyxy=(0, 0, 10, 10))
        for i, n in enumerate(names)
    ]


def test_interval_summaries_align_to_the_clock_and_count_per_class() -> None:
    s = IntervalSummariser(60.0, source_id="cam-1", model="m")
    out: list[IntervalSummary] = []
    # 1 frame a second from 00:00:30 to 00:02:10; tracks 1 and 2 in the first minute,
    # 2 and 3 in the second, 3 in the third
    for sec in range(30, 131):
        ids = [1, 2] if sec < 60 else [2, 3] if sec < 120 else [3]
        frame = batch(sec, [Obs(i, 10.0, class_id=i % 2) for i in ids])
        out += s.add(TS + sec, _dets("circle", "square"), frame)
    out += s.flush()
    assert [(x.start_utc.minute, x.end_utc.minute, x.frames) for x in out] == [
        (0, 1, 30),
        (1, 2, 60),
        (2, 3, 11),
    ]
    assert out[1].detections_by_class == {"circle": 60, "square": 60}
    assert out[0].tracks_by_class == {"square": 1, "circle": 1}  # ids 1 (class 1), 2 (class 0)
    assert out[1].tracks_by_class == {"circle": 1, "square": 1}
    assert out[1].new_tracks_by_class == {"square": 1}  # only id 3 is new
    assert out[2].new_tracks_by_class == {}
    assert all(x.source_id == "cam-1" and x.model == "m" for x in out)
    assert s.flush() == []


def test_summaries_take_columns_too() -> None:
    s = IntervalSummariser(10.0, source_id="a")
    s.add(TS, DetectionArray.of([[0, 0, 1, 1]] * 3, [0.9] * 3, [0, 0, 2], {0: "c", 2: "t"}))
    (summary,) = s.flush()
    assert summary.detections_by_class == {"c": 2, "t": 1}


def test_events_per_device_hour_of_each_mode() -> None:
    rates = events_per_hour(15.0, summary_sec=60.0, crossings_per_hour=200.0)
    assert rates == {
        "per_frame": 54_000.0,
        "summaries": 60.0,
        "crossings": 200.0,
        "summaries_plus_crossings": 260.0,
    }


def test_source_tracking_turns_detections_into_events() -> None:
    cfg = build_config(
        {
            "track": {
                "min_hits": 2,
                "summary_sec": 1.0,
                "lines": [{"name": "gate", "points": [[0.5, 0.0], [0.5, 1.0]]}],
                "zones": [{"name": "right", "points": [[0.5, 0], [1, 0], [1, 1], [0.5, 1]]}],
            }
        }
    )
    src = SourceTracking(cfg.track, width=200, height=100, source_id="cam", model="m")
    events = []
    for f in range(40):  # a circle moving right across the middle at 5 px a frame
        x = 10.0 + 5 * f
        det = Detection(class_id=0, class_name="circle", score=0.9, xyxy=(x, 40, x + 20, 60))
        events += src.step([det], ts=TS + f / 10).events
    events += src.close()
    kinds = [type(e).__name__ for e in events]
    assert kinds.count("CrossingEvent") == 1
    # it enters the right half, and leaves it past the frame's right edge (anchor x > 200)
    assert [e.action for e in events if isinstance(e, ZoneEvent)] == ["enter", "exit"]
    crossing = next(e for e in events if isinstance(e, CrossingEvent))
    # "in" is left of the downward line, i.e. the image's right: moving right goes in
    assert (crossing.line, crossing.direction, crossing.track_id) == ("gate", "in", 1)
    summaries = [e for e in events if isinstance(e, IntervalSummary)]
    assert sum(s.frames for s in summaries) == 40 and len(summaries) == 4
    assert sum(s.new_tracks_by_class.get("circle", 0) for s in summaries) == 1
    assert all(msgspec.json.decode(to_json(e), type=TrackEvent) == e for e in events)
