"""Line crossings: the supervision trap table, and our own cases.

Each case feeds a LineCounter frames of observed tracks (id, class, box, confirmed) and
checks the counts per (line, class, direction). min_frames_on_side = 3 throughout.
Line "gate" runs from (0, 100) to (200, 100), left to right: seen from its start looking
at its end, "left" (the default in_side, so "in") is above it (y < 100).
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from tests.fixtures.tracks import Obs, batch
from vision_core.track.anchors import Anchor
from vision_core.track.lines import LineCounter
from vision_core.track.regions import LineRegion, line_in_sign

GATE = LineRegion("gate", (0.0, 100.0), (200.0, 100.0), line_in_sign("left"), frozenset())
ABOVE, BELOW = 80.0, 120.0


def run(
    frames: Sequence[Sequence[Obs]],
    lines: Sequence[LineRegion] = (GATE,),
    *,
    anchor: Anchor = "center",
    forget_frames: int = 31,
) -> tuple[dict[tuple[str, str, str], int], list]:
    counter = LineCounter(lines, min_frames_on_side=3, forget_frames=forget_frames, anchor=anchor)
    events = []
    for f, obs in enumerate(frames):
        events += counter.update(batch(f, obs), ts=1000.0 + f / 10)
    return counter.counts, events


def path(track_id: int, ys: Sequence[float], **kw: object) -> list[list[Obs]]:
    return [[Obs(track_id, y, **kw)] for y in ys]  # type: ignore[arg-type]


def side(y: float, n: int) -> list[float]:
    return [y] * n


def alternate(n: int, a: float, b: float) -> list[float]:
    return [a if i % 2 == 0 else b for i in range(n)]


TRAPS = [
    # --- supervision issue 2578: unconfirmed tracks sharing one id (-1) count nothing
    pytest.param(
        path(-1, alternate(12, ABOVE, BELOW), confirmed=False),
        {},
        id="2578-unconfirmed-shared-id-minus-one-alternating",
    ),
    pytest.param(
        path(-1, side(BELOW, 4) + side(ABOVE, 4) + side(BELOW, 4) + side(ABOVE, 4)),
        {},
        id="2578-shared-id-minus-one-even-in-long-runs",
    ),
    pytest.param(
        path(7, side(BELOW, 4) + side(ABOVE, 4) + side(BELOW, 4), confirmed=False),
        {},
        id="2578-tentative-track-never-confirmed",
    ),
    # --- PR 2600 / PR 1540: a flicker to the other side for < 3 frames counts nothing
    pytest.param(path(1, side(BELOW, 3) + side(ABOVE, 1) + side(BELOW, 3)), {}, id="2600-AAABAAA"),
    pytest.param(
        path(1, side(ABOVE, 5) + side(BELOW, 2) + side(ABOVE, 5)),
        {},
        id="2600-two-frame-flicker-other-direction",
    ),
    pytest.param(
        path(1, side(BELOW, 4) + (side(ABOVE, 1) + side(BELOW, 3)) * 4),
        {},
        id="1540-repeated-flicker-never-drifts",
    ),
    pytest.param(
        path(1, side(BELOW, 4) + alternate(20, ABOVE, BELOW)), {}, id="1540-box-flickering-on-line"
    ),
    # --- PR 1868: an id reused for another class cannot mix counts
    pytest.param(
        path(5, side(BELOW, 5), class_id=0) + path(5, side(ABOVE, 5), class_id=1),
        {},
        id="1868-id-reused-for-another-class",
    ),
    pytest.param(
        path(5, side(BELOW, 5), class_id=0)
        + path(5, side(ABOVE, 5), class_id=1)
        + path(5, side(ABOVE, 5), class_id=0),
        {("gate", "circle", "in"): 1},
        id="1868-each-class-keeps-its-own-history",
    ),
    # --- approaches the line and turns back
    pytest.param(
        path(2, [140, 130, 120, 112, 106, 102, 101, 103, 110, 125, 140]),
        {},
        id="approach-and-turn-back",
    ),
    pytest.param(
        path(2, [140, 130, 120, 110, 104, 98, 96, 104, 115, 130]),
        {},
        id="pokes-over-for-two-frames-and-turns-back",
    ),
    # --- crosses, lingers on the line and jitters: once
    pytest.param(
        path(3, side(BELOW, 5) + alternate(12, 99, 101) + side(ABOVE, 6)),
        {("gate", "circle", "in"): 1},
        id="lingers-on-line-jittering-then-crosses",
    ),
    pytest.param(
        path(3, side(BELOW, 5) + side(ABOVE, 4) + alternate(12, 101, 99) + side(ABOVE, 6)),
        {("gate", "circle", "in"): 1},
        id="crosses-then-lingers-jittering-back",
    ),
    # --- own cases
    pytest.param(
        path(4, side(BELOW, 5) + side(ABOVE, 5)), {("gate", "circle", "in"): 1}, id="cross-up-in"
    ),
    pytest.param(
        path(4, side(ABOVE, 5) + side(BELOW, 5)),
        {("gate", "circle", "out"): 1},
        id="cross-down-out",
    ),
    pytest.param(
        path(4, side(BELOW, 5) + side(ABOVE, 5) + side(BELOW, 5) + side(ABOVE, 5)),
        {("gate", "circle", "in"): 2, ("gate", "circle", "out"): 1},
        id="back-and-forth-both-directions",
    ),
    pytest.param(
        path(4, side(BELOW, 5) + side(ABOVE, 5), x=260.0),
        {},
        id="passes-beside-the-end-of-the-segment",
    ),
    pytest.param(
        path(4, side(BELOW, 5) + side(ABOVE, 5), x=199.0),
        {("gate", "circle", "in"): 1},
        id="crosses-just-inside-the-segment-end",
    ),
    pytest.param(
        [[Obs(4, y, x=120.0 + 20 * i)] for i, y in enumerate(side(BELOW, 5) + side(ABOVE, 5))],
        {},
        id="diagonal-path-crosses-infinite-line-beyond-segment",
    ),
    pytest.param(
        path(6, side(BELOW, 3) + side(ABOVE, 3), confirmed=False)
        + path(6, side(ABOVE, 3), confirmed=True),
        {("gate", "circle", "in"): 1},
        id="crossing-made-while-tentative-counts-once-confirmed",
    ),
    pytest.param(
        path(8, side(BELOW, 5) + side(ABOVE, 5)) + path(9, side(ABOVE, 5) + side(BELOW, 5)),
        {("gate", "circle", "in"): 1, ("gate", "circle", "out"): 1},
        id="two-tracks",
    ),
    pytest.param(
        path(4, side(BELOW, 2) + side(ABOVE, 8)),
        {},
        id="first-side-needs-three-frames-too",
    ),
    pytest.param(
        path(4, side(BELOW, 5) + side(ABOVE, 5), class_id=1),
        {("gate", "square", "in"): 1},
        id="per-class",
    ),
]


@pytest.mark.parametrize(("frames", "expected"), TRAPS)
def test_line_crossing_rule(frames: list[list[Obs]], expected: dict) -> None:
    counts, events = run(frames)
    assert counts == expected
    assert len(events) == sum(expected.values())


def test_crossing_event_is_stamped_with_the_first_frame_on_the_new_side() -> None:
    _, events = run(path(4, side(BELOW, 5) + side(ABOVE, 5)))
    (ev,) = events
    assert (ev.line, ev.direction, ev.track_id, ev.class_name) == ("gate", "in", 4, "circle")
    assert ev.frame_index == 5 and ev.ts == pytest.approx(1000.5)


@pytest.mark.parametrize(
    ("anchor", "line_y", "tops"),
    [
        # a 100 px tall box moving down into a 720 px frame from above, clipped by the
        # frame edge; the centre of the visible part starts near 0, so the centre anchor
        # counts as long as it is seen 3 frames above the line (here 3 px a frame) ...
        pytest.param("center", 10.0, range(-98, 300, 3), id="1838-line-10px-from-top-center"),
        # ... and the anchor on the edge's side counts at any speed
        pytest.param("top_center", 10.0, range(-95, 300, 10), id="1838-line-10px-from-top-top"),
        # leaving through the bottom edge past a line 10 px above it
        pytest.param("bottom_center", 710.0, range(500, 760, 10), id="1838-line-10px-from-bottom"),
    ],
)
def test_a_line_near_the_frame_edge_still_counts(
    anchor: Anchor, line_y: float, tops: range
) -> None:
    line = LineRegion("edge", (0.0, line_y), (1296.0, line_y), line_in_sign("left"), frozenset())
    frames = []
    for top in tops:
        y1, y2 = max(0.0, float(top)), min(720.0, top + 100.0)
        if y2 > y1:  # the detector sees the part inside the frame
            frames.append([Obs(1, 0.0, rect=(540.0, y1, 660.0, y2))])
    counts, _ = run(frames, [line], anchor=anchor)
    assert counts == {("edge", "circle", "out"): 1}


def test_several_lines_each_count() -> None:
    upper = LineRegion("upper", (0.0, 50.0), (200.0, 50.0), line_in_sign("right"), frozenset())
    counts, _ = run(path(1, side(120, 5) + side(80, 5) + side(30, 5)), [GATE, upper])
    # crossing "upper" upwards goes to its left side; its "in" is the right side
    assert counts == {("gate", "circle", "in"): 1, ("upper", "circle", "out"): 1}


def test_class_filter_of_a_line() -> None:
    squares = LineRegion("gate", GATE.start, GATE.end, GATE.in_sign, frozenset({"square"}))
    frames = [
        [Obs(1, y, class_id=0), Obs(2, y, x=150.0, class_id=1)]
        for y in side(BELOW, 5) + side(ABOVE, 5)
    ]
    counts, _ = run(frames, [squares])
    assert counts == {("gate", "square", "in"): 1}


def test_a_crossing_through_a_short_occlusion_counts_once() -> None:
    frames = path(1, side(BELOW, 5)) + [[]] * 10 + path(1, side(ABOVE, 5))
    counts, _ = run(frames)
    assert counts == {("gate", "circle", "in"): 1}


def test_a_track_gone_longer_than_forget_frames_starts_over() -> None:
    frames = path(1, side(BELOW, 5)) + [[]] * 12 + path(1, side(ABOVE, 5))
    counts, _ = run(frames, forget_frames=10)
    assert counts == {}


def test_a_big_jump_between_frames_through_the_segment_counts() -> None:
    counts, _ = run(path(1, side(190.0, 4) + side(10.0, 4)))
    assert counts == {("gate", "circle", "in"): 1}


def test_counts_by_line_lists_every_line() -> None:
    counter = LineCounter([GATE], min_frames_on_side=3)
    for f, obs in enumerate(path(1, side(BELOW, 5) + side(ABOVE, 5))):
        counter.update(batch(f, obs), ts=float(f))
    assert counter.counts_by_line() == {"gate": {"circle": {"in": 1, "out": 0}}}
    assert LineCounter([GATE]).counts_by_line() == {"gate": {}}
