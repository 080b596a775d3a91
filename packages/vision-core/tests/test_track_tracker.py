"""The ByteTrack-class tracker, its assignment and its Kalman filter."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from vision_core.track.assign import linear_assignment, solve_dense
from vision_core.track.counting import TrackCounter
from vision_core.track.kalman import (
    KalmanBoxFilter,
    full_covariance,
    xywh_to_xyxy,
    xyxy_to_xywh,
)
from vision_core.track.regions import LineRegion, ZoneRegion, line_in_sign
from vision_core.track.tracker import ByteTracker, DetectionArray, TrackerSettings
from vision_core.types import Detection

NAMES = {0: "circle", 1: "square", 2: "triangle"}


def dets(*rows: tuple[float, float, float, int]) -> DetectionArray:
    """(x, y, score, class) of 20x20 boxes with their top-left at (x, y)."""
    return DetectionArray.of(
        [[x, y, x + 20, y + 20] for x, y, _, _ in rows],
        [s for *_, s, _ in rows],
        [c for *_, c in rows],
        NAMES,
    )


def ids_states(tracker: ByteTracker, frame: DetectionArray) -> list[tuple[int, str]]:
    return [(t.track_id, t.state) for t in tracker.update(frame)]


# -- assignment ------------------------------------------------------------------------------


def _brute(cost: np.ndarray, max_cost: float) -> tuple[int, float]:
    """(most pairs, least total cost) over all matchings of allowed pairs."""
    n, m = cost.shape
    for k in range(min(n, m), -1, -1):
        best = None
        for rows in itertools.combinations(range(n), k):
            for cols in itertools.permutations(range(m), k):
                pairs = list(zip(rows, cols, strict=True))
                if all(cost[r, c] <= max_cost for r, c in pairs):
                    total = sum(cost[r, c] for r, c in pairs)
                    best = total if best is None else min(best, total)
        if best is not None:
            return k, best
    return 0, 0.0


def test_assignment_matches_brute_force_on_small_matrices() -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        n, m = (int(v) for v in rng.integers(1, 6, 2))
        cost = rng.random((n, m))
        max_cost = float(rng.random())
        matches, u_rows, u_cols = linear_assignment(cost, max_cost)
        k, total = _brute(cost, max_cost)
        assert len(matches) == k
        assert sum(cost[r, c] for r, c in matches) == pytest.approx(total)
        assert sorted([*matches[:, 0], *u_rows]) == list(range(n))
        assert sorted([*matches[:, 1], *u_cols]) == list(range(m))


def test_solve_dense_agrees_with_scipy() -> None:
    from scipy.optimize import linear_sum_assignment

    rng = np.random.default_rng(1)
    for n, m in [(12, 12), (8, 20), (25, 25)]:
        cost = rng.random((n, m))
        cols = solve_dense(cost)
        r, c = linear_sum_assignment(cost)
        assert cost[np.arange(n), cols].sum() == pytest.approx(cost[r, c].sum())
        assert len(set(cols.tolist())) == n


def test_assignment_of_empty_inputs() -> None:
    matches, ur, uc = linear_assignment(np.zeros((0, 3)), 0.5)
    assert matches.shape == (0, 2) and ur.size == 0 and uc.tolist() == [0, 1, 2]


# -- Kalman filter ---------------------------------------------------------------------------


def test_kalman_learns_a_constant_velocity() -> None:
    kf = KalmanBoxFilter()
    box = np.array([[100.0, 50.0, 130.0, 80.0]])
    mean, cov = kf.initiate(xyxy_to_xywh(box))
    for f in range(1, 15):
        mean, cov = kf.predict(mean, cov)
        mean, cov = kf.update(mean, cov, xyxy_to_xywh(box + np.array([[4, -2, 4, -2]]) * f))
    pred, _ = kf.predict(mean, cov)
    expected = box + np.array([[60, -30, 60, -30]])
    assert np.abs(xywh_to_xyxy(pred[:, :4]) - expected).max() < 1.0
    assert pred[0, 4] == pytest.approx(4.0, abs=0.2) and pred[0, 5] == pytest.approx(-2.0, abs=0.2)


# -- the tracker -----------------------------------------------------------------------------


def test_tracks_are_tentative_until_min_hits_then_confirmed() -> None:
    tr = ByteTracker(TrackerSettings(min_hits=3))
    states = [ids_states(tr, dets((10 + 3 * f, 10, 0.9, 0))) for f in range(4)]
    assert states == [
        [(1, "tentative")],
        [(1, "tentative")],
        [(1, "confirmed")],
        [(1, "confirmed")],
    ]


def test_a_tentative_track_that_misses_a_frame_is_dropped() -> None:
    tr = ByteTracker(TrackerSettings(min_hits=3))
    tr.update(dets((10, 10, 0.9, 0)))
    tr.update(dets())
    assert ids_states(tr, dets((10, 10, 0.9, 0))) == [(2, "tentative")]


def test_second_stage_keeps_a_track_alive_through_a_low_score_frame() -> None:
    scores = [0.9, 0.9, 0.9, 0.9, 0.3, 0.9, 0.9]

    def run(low_thresh: float) -> list[list[int]]:
        tr = ByteTracker(TrackerSettings(low_thresh=low_thresh, min_hits=2))
        return [
            [t.track_id for t in tr.update(dets((10 + 4 * f, 10, s, 0)))]
            for f, s in enumerate(scores)
        ]

    # with stage 2 the low-score detection is matched: the track is seen on that frame
    assert run(0.1) == [[1]] * 7
    # without it (0.3 below low_thresh) the track is lost on that frame, found again after
    assert run(0.4) == [[1], [1], [1], [1], [], [1], [1]]


def test_second_stage_serves_a_track_lost_for_a_frame_or_two() -> None:
    """Missed on frame 4 (hidden), then scored low for two frames while it comes out from
    behind another object: with low_lost_frames (default 2) the track takes those
    low-score boxes; with 0 (ByteTrack's rule) it waits for a high score."""
    scores = [0.9, 0.9, 0.9, 0.9, None, 0.3, 0.3, 0.9]

    def run(**kw: int) -> list[list[int]]:
        tr = ByteTracker(TrackerSettings(min_hits=2, **kw))
        return [
            [t.track_id for t in tr.update(dets() if s is None else dets((10 + 4 * f, 10, s, 0)))]
            for f, s in enumerate(scores)
        ]

    assert TrackerSettings().low_lost_frames == 2
    assert run() == [[1], [1], [1], [1], [], [1], [1], [1]]
    assert run(low_lost_frames=0) == [[1], [1], [1], [1], [], [], [], [1]]
    # three frames missed: more than 2, so the low-score boxes after it are not taken
    scores = [0.9, 0.9, 0.9, 0.9, None, None, None, 0.3, 0.9]
    assert run() == [[1], [1], [1], [1], [], [], [], [], [1]]


def test_a_low_score_box_outvoted_by_another_class_keeps_no_track_alive() -> None:
    """A circle track (class 0); then the detector scores the object 0.3 as a circle and
    0.9 as a square on the same spot (class-aware NMS keeps both): the circle track does
    not take the low circle box, and the square box starts a square track. Without the
    square box, the low circle box keeps the circle track alive."""

    def run(*last: tuple[float, float, float, int]) -> list[tuple[int, int, str]]:
        tr = ByteTracker(TrackerSettings(min_hits=2))
        for f in range(3):
            tr.update(dets((10 + 2 * f, 10, 0.9, 0)))
        return [(t.track_id, t.class_id, t.state) for t in tr.update(dets(*last))]

    assert run((16, 10, 0.3, 0)) == [(1, 0, "confirmed")]
    assert run((16, 10, 0.3, 0), (16, 10, 0.9, 1)) == [(2, 1, "tentative")]
    # a square box elsewhere changes nothing
    assert run((16, 10, 0.3, 0), (200, 10, 0.9, 1)) == [(1, 0, "confirmed"), (2, 1, "tentative")]


def test_a_low_score_detection_never_starts_a_track() -> None:
    tr = ByteTracker(TrackerSettings(new_track_thresh=0.6))
    for _ in range(5):
        assert len(tr.update(dets((10, 10, 0.55, 0)))) == 0
    assert tr.live_tracks == 0 and tr.next_id == 1


def test_ids_are_never_reused() -> None:
    tr = ByteTracker(TrackerSettings(min_hits=1, lost_frames=3))
    seen: list[int] = []
    for life in range(6):  # an object at the same place, gone long enough to expire between
        for _ in range(5):
            seen += [t.track_id for t in tr.update(dets((50, 50, 0.9, 0)))]
        for _ in range(5):
            tr.update(dets())
        assert tr.live_tracks == 0
        assert set(seen[-5:]) == {life + 1}
    assert sorted(set(seen)) == [1, 2, 3, 4, 5, 6]


def test_a_lost_track_is_found_again_within_the_buffer_and_expires_after() -> None:
    def gap_then_back(gap: int) -> int:
        tr = ByteTracker(TrackerSettings(min_hits=1, lost_frames=10))
        for f in range(6):
            tr.update(dets((10 + 2 * f, 10, 0.9, 0)))
        for _ in range(gap):
            tr.update(dets())
        f = 6 + gap
        (track,) = tr.update(dets((10 + 2 * f, 10, 0.9, 0)))
        return track.track_id

    assert gap_then_back(8) == 1  # predicted on through the gap, matched again
    assert gap_then_back(12) == 2  # expired: a new object


def test_class_consistent_matching_keeps_classes_apart() -> None:
    frames = [dets((10 + 2 * f, 10, 0.9, 0 if f < 5 else 1)) for f in range(8)]
    strict = ByteTracker(TrackerSettings(min_hits=1, class_consistent=True))
    loose = ByteTracker(TrackerSettings(min_hits=1, class_consistent=False))
    out_strict = [[(t.track_id, t.class_name) for t in strict.update(d)] for d in frames]
    out_loose = [[(t.track_id, t.class_name) for t in loose.update(d)] for d in frames]
    assert out_strict[4] == [(1, "circle")] and out_strict[5] == [(2, "square")]
    # without it the same track takes the square boxes; its class follows the summed
    # scores (5 circle frames outweigh 3 square frames)
    assert {tid for frame in out_loose for tid, _ in frame} == {1}
    assert out_loose[-1] == [(1, "circle")]


def test_detections_and_columns_give_the_same_tracks() -> None:
    rows = [(10.0, 10.0, 0.9, 0), (100.0, 40.0, 0.7, 1), (60.0, 90.0, 0.3, 2)]
    structs = [
        Detection(class_id=c, class_name=NAMES[c], score=s, xyxy=(x, y, x + 20, y + 20))
        for x, y, s, c in rows
    ]
    a, b = ByteTracker(), ByteTracker()
    for _ in range(3):
        ta, tb = a.update(structs), b.update(dets(*rows))
    assert [(t.track_id, t.class_name, t.xyxy) for t in ta] == [
        (t.track_id, t.class_name, t.xyxy) for t in tb
    ]
    assert [t.class_name for t in ta] == ["circle", "square"]


def test_invalid_boxes_are_ignored() -> None:
    tr = ByteTracker(TrackerSettings(min_hits=1))
    d = DetectionArray.of(
        [[0, 0, 0, 10], [5, 5, 4, 9], [np.nan, 0, 10, 10], [0, 0, 10, 10]],
        [0.9, 0.9, 0.9, np.nan],
        [0, 0, 0, 0],
    )
    assert len(tr.update(d)) == 0 and tr.live_tracks == 0


def test_max_tracks_caps_the_tracker() -> None:
    rng = np.random.default_rng(0)
    tr = ByteTracker(TrackerSettings(min_hits=1, lost_frames=10_000, max_tracks=40))
    for _ in range(50):  # 20 new objects every frame, never seen again
        xy = rng.uniform(0, 5000, (20, 2))
        tr.update(DetectionArray.of(np.concatenate([xy, xy + 10], 1), [0.9] * 20, [0] * 20))
        assert tr.live_tracks <= 40
    assert tr.next_id > 900  # ids keep growing: never reused even when evicted


def test_state_stays_bounded_on_an_endless_stream() -> None:
    """Objects cross a frame one after another for 1500 frames: the tracker's and the
    counter's state stay as large as what is in view, not what was seen (the benchmark
    measures the memory over a simulated hour)."""
    settings = TrackerSettings(min_hits=2, lost_frames=15)
    tracker = ByteTracker(settings)
    counter = TrackCounter(
        [LineRegion("gate", (300.0, 0.0), (300.0, 400.0), line_in_sign("left"), frozenset())],
        [ZoneRegion("zone", ((0.0, 0.0), (200.0, 0.0), (200.0, 400.0), (0.0, 400.0)), frozenset())],
        forget_frames=settings.lost_frames + 1,
    )
    lanes = np.linspace(20, 360, 8)
    # 8 lanes, an object entering each lane every 60 frames, 10 px a frame across 600 px
    phase = np.random.default_rng(3).integers(0, 60, 8)
    live, slots = [], []
    for f in range(1500):
        x = ((f + phase) % 60) * 10.0
        boxes = np.stack([x, lanes, x + 20, lanes + 20], 1)
        batch = tracker.update(DetectionArray.of(boxes, [0.9] * 8, np.arange(8) % 3, NAMES))
        counter.update(batch, ts=f / 15)
        live.append(tracker.live_tracks)
        slots.append(len(counter.slots))
    assert tracker.next_id > 180  # many objects came and went
    assert max(live) <= 8 * 2 and max(slots) <= 8 * 2
    assert counter.lines.slots is counter.zones.slots is counter.slots  # looked up once
    assert counter.slots.capacity <= 32
    assert tracker._mean.shape[0] == tracker.live_tracks  # no rows left behind
    crossings = sum(counter.line_counts.values())
    assert crossings >= 0.9 * 8 * 1500 / 60  # and the objects are counted all along
    assert not counter.occupancy()["zone"] or counter.occupancy()["zone"] <= 8


def test_kalman_stays_stable_over_a_long_track() -> None:
    """No drift into a non-positive covariance over 3,000 frames (an earlier full-matrix
    form, P - KHP with a gain from P's transpose, blew up after about 80 frames)."""
    kf = KalmanBoxFilter()
    box = np.array([[10.0, 10.0, 39.0, 39.0]])
    mean, cov = kf.initiate(xyxy_to_xywh(box))
    for f in range(1, 3000):
        mean, cov = kf.predict(mean, cov)
        mean, cov = kf.update(mean, cov, xyxy_to_xywh(box + np.array([[3.5, 0, 3.5, 0]]) * f))
    full = full_covariance(cov)[0]
    assert np.linalg.eigvalsh(full).min() > 0 and np.allclose(full, full.T)
    assert mean[0, 4] == pytest.approx(3.5, abs=1e-3)


def _textbook_kalman(
    mean: np.ndarray, cov: np.ndarray, boxes: list[np.ndarray | None]
) -> tuple[np.ndarray, np.ndarray]:
    """SORT/ByteTrack's filter with full 8x8 matrices, one track: F, H, Q, R written out."""
    f = np.eye(8)
    f[:4, 4:] = np.eye(4)
    h = np.eye(4, 8)
    for z in boxes:
        wh = np.maximum(mean[2:4], 1.0)
        s = np.concatenate([wh, wh])
        q = np.diag(np.concatenate([s / 20, s / 160]) ** 2)
        mean, cov = f @ mean, f @ cov @ f.T + q
        if z is None:  # a missed frame: predict only
            continue
        wh = np.maximum(mean[2:4], 1.0)
        r = np.diag((np.concatenate([wh, wh]) / 20) ** 2)
        gain = cov @ h.T @ np.linalg.inv(h @ cov @ h.T + r)
        mean = mean + gain @ (z - h @ mean)
        cov = (np.eye(8) - gain @ h) @ cov
    return mean, cov


def test_kalman_blocks_give_the_full_matrix_filters_numbers() -> None:
    """Keeping only the per-coordinate 2x2 blocks is exact: over a wandering, resizing box
    with missed frames, means and covariances equal the textbook 8x8 filter's."""
    rng = np.random.default_rng(3)
    kf = KalmanBoxFilter()
    start = np.array([[200.0, 120.0, 40.0, 25.0]])
    mean, cov = kf.initiate(start)
    ref_mean, ref_cov = mean[0].copy(), full_covariance(cov)[0]
    boxes: list[np.ndarray | None] = []
    for f in range(60):
        z = start[0] + np.array([3.0 * f, -1.5 * f, 0.2 * f, 0.1 * f]) + rng.normal(0, 2, 4)
        boxes.append(None if f % 7 == 3 else z)
    for z in boxes:
        mean, cov = kf.predict(mean, cov)
        if z is not None:
            mean, cov = kf.update(mean, cov, z[None])
    ref_mean, ref_cov = _textbook_kalman(ref_mean, ref_cov, boxes)
    assert np.allclose(mean[0], ref_mean, rtol=1e-9, atol=1e-9)
    assert np.allclose(full_covariance(cov)[0], ref_cov, rtol=1e-9, atol=1e-9)


def test_a_tentative_track_survives_a_low_score_frame() -> None:
    tr = ByteTracker(TrackerSettings(min_hits=3))
    out = [ids_states(tr, dets((10 + 3 * f, 10, s, 0))) for f, s in enumerate([0.9, 0.3, 0.9])]
    assert out == [[(1, "tentative")], [(1, "tentative")], [(1, "confirmed")]]


def test_a_second_box_on_a_tracked_object_starts_no_track() -> None:
    """Class-aware NMS can keep a square and a circle box on one object: one track."""
    tr = ByteTracker(TrackerSettings(min_hits=1))
    tr.update(dets((10, 10, 0.9, 1)))
    out = tr.update(dets((12, 10, 0.9, 1), (12, 11, 0.8, 0)))
    assert [(t.track_id, t.class_name) for t in out] == [(1, "square")]
    assert tr.next_id == 2
