"""Polygon zones: enter, exit, occupancy, dwell, and a track that vanishes inside."""

from __future__ import annotations

import numpy as np
import pytest

from tests.fixtures.tracks import Obs, batch
from vision_core.track.regions import ZoneRegion
from vision_core.track.zones import ZoneCounter, points_in_polygon

SQUARE = ZoneRegion(
    "dock", ((100.0, 100.0), (200.0, 100.0), (200.0, 200.0), (100.0, 200.0)), frozenset()
)
IN, OUT = 150.0, 50.0  # x of the anchor (y = 150): inside / outside the square


def run(frames: list[list[Obs]], zones=(SQUARE,), *, forget_frames: int = 31):
    zc = ZoneCounter(list(zones), min_frames_on_side=3, forget_frames=forget_frames)
    events = []
    for f, obs in enumerate(frames):
        events += zc.update(batch(f, obs), ts=float(f))
    return zc, events


def xs(track_id: int, values: list[float], **kw: object) -> list[list[Obs]]:
    return [[Obs(track_id, 150.0, x=v, **kw)] for v in values]  # type: ignore[arg-type]


def test_enter_and_exit_with_dwell_from_first_frames_of_each_run() -> None:
    zc, events = run(xs(1, [OUT] * 4 + [IN] * 10 + [OUT] * 4))
    assert [(e.action, e.frame_index, e.occupancy) for e in events] == [
        ("enter", 4, 1),
        ("exit", 14, 0),
    ]
    assert events[1].dwell_sec == pytest.approx(10.0) and not events[1].lost
    assert zc.occupancy() == {"dock": 0}


def test_a_flicker_across_the_border_changes_nothing() -> None:
    _, events = run(xs(1, [OUT] * 4 + [IN, IN, OUT, IN, OUT, OUT, IN] + [OUT] * 4))
    assert events == []
    _zc, events = run(xs(1, [IN] * 5 + [OUT, OUT] + [IN] * 5))
    assert [e.action for e in events] == ["enter"]  # born inside: enters once, stays


def test_occupancy_per_zone_and_class() -> None:
    frames = [
        [Obs(1, 150, x=IN, class_id=0), Obs(2, 150, x=IN + 20, class_id=1), Obs(3, 150, x=OUT)]
        for _ in range(5)
    ]
    zc, events = run(frames)
    assert zc.occupancy() == {"dock": 2}
    assert zc.occupancy_by_class == {"dock": {"circle": 1, "square": 1}}
    assert sorted(e.track_id for e in events) == [1, 2]
    assert zc.entered == {("dock", "circle"): 1, ("dock", "square"): 1}


def test_a_track_that_vanishes_inside_exits_when_forgotten() -> None:
    """supervision issue 1855: occupancy must not keep an object that left unseen."""
    zc, events = run(xs(1, [IN] * 6) + [[]] * 12, forget_frames=10)
    assert [e.action for e in events] == ["enter", "exit"]
    gone = events[1]
    assert gone.lost and gone.frame_index == 5 and gone.ts == 5.0
    assert gone.dwell_sec == pytest.approx(5.0) and gone.occupancy == 0
    assert zc.occupancy() == {"dock": 0}


def test_a_tentative_track_enters_once_confirmed() -> None:
    frames = xs(1, [IN] * 5, confirmed=False) + xs(1, [IN] * 2, confirmed=True)
    _, events = run(frames)
    assert [(e.action, e.frame_index) for e in events] == [("enter", 0)]


def test_class_filter_of_a_zone() -> None:
    squares = ZoneRegion("dock", SQUARE.polygon, frozenset({"square"}))
    frames = [[Obs(1, 150, x=IN, class_id=0), Obs(2, 150, x=IN, class_id=1)] for _ in range(5)]
    _zc, events = run(frames, (squares,))
    assert [e.class_name for e in events] == ["square"]


def test_dwell_now_of_occupants() -> None:
    zc, _ = run(xs(7, [IN] * 8))
    ((zone, tid, cls, seconds),) = zc.dwell_now(ts=20.0)
    assert (zone, tid, cls) == ("dock", 7, "circle") and seconds == pytest.approx(20.0)


def test_points_in_a_concave_polygon() -> None:
    # a U shape: the notch (x 40..60, y 0..60) is outside
    u = np.array([[0, 0], [40, 0], [40, 60], [60, 60], [60, 0], [100, 0], [100, 100], [0, 100]])
    pts = np.array([[20, 20], [50, 30], [80, 20], [50, 80], [120, 50], [-1, 50]], float)
    assert points_in_polygon(pts, u.astype(float)).tolist() == [
        True,
        False,
        True,
        True,
        False,
        False,
    ]


def test_closing_the_source_lets_every_occupant_leave() -> None:
    """A run that ends (or a device that restarts) with objects inside: each gets a lost
    exit at the time it was last seen inside, so occupancy kept from events returns to 0."""
    frames = [[Obs(1, 150, x=IN), Obs(2, 150, x=IN + 20, class_id=1)] for _ in range(6)]
    zc, _ = run(frames)
    assert zc.occupancy() == {"dock": 2}
    exits = zc.close()
    assert sorted((e.track_id, e.action, e.lost) for e in exits) == [
        (1, "exit", True),
        (2, "exit", True),
    ]
    assert all(e.ts == 5.0 and e.dwell_sec == pytest.approx(5.0) for e in exits)
    assert zc.occupancy() == {"dock": 0} and zc.close() == []
