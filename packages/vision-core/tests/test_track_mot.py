"""MOT files and scores: round trip, bad lines, a hand-computed IDF1/MOTA, count errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vision_core.config.schema import TrackSection
from vision_core.errors import DatasetError, MissingDependencyError
from vision_core.track.mot import (
    MotData,
    MotFileWriter,
    MotWriter,
    TrackFiller,
    read_mot,
    write_mot,
)
from vision_core.track.score import flatten_counts, score_counts, score_tracking
from vision_core.track.tracker import ByteTracker, DetectionArray, TrackerSettings

A, B, C = (10, 10, 50, 50), (200, 10, 240, 50), (100, 150, 140, 190)


def test_round_trip_keeps_every_field(tmp_path: Path) -> None:
    w = MotWriter()
    w.add_row(0, 3, (10.25, 20.5, 60.125, 80.0), 0.875, 2, 0.5)
    w.add_row(4, 1, (0, 0, 1.5, 2.25), 1.0, 0, 1.0)
    w.add_row(0, 1, (5, 5, 15, 15), 0.3, -1, -1.0)
    path = write_mot(tmp_path / "run.txt", w.data())
    assert path.read_text().splitlines()[0] == "1,1,5,5,10,10,0.3,-1,-1"
    back = read_mot(path)
    order = np.lexsort((w.data().ids, w.data().frames))
    want = w.data().select(order)
    for name in ("frames", "ids", "class_ids"):
        assert getattr(back, name).tolist() == getattr(want, name).tolist()
    for name in ("xyxy", "conf", "visibility"):
        assert np.allclose(getattr(back, name), getattr(want, name), atol=1e-3)


def test_tracker_output_goes_to_mot(tmp_path: Path) -> None:
    tr = ByteTracker(TrackerSettings(min_hits=2))
    w = MotWriter()
    for f in range(4):
        d = DetectionArray.of([[10 + f, 10, 30 + f, 30]], [0.9], [1], {1: "square"})
        w.add(f, tr.update(d))
    data = read_mot(write_mot(tmp_path / "t.txt", w.data()))
    assert data.frames.tolist() == [2, 3, 4]  # tentative on frame 1: not written
    assert set(data.ids.tolist()) == {1} and set(data.class_ids.tolist()) == {1}


def _moving(f: int, x0: float = 10.0, v: float = 4.0) -> list[float]:
    return [x0 + v * f, 10.0, x0 + v * f + 20.0, 30.0]


def _occlusion_run() -> tuple[MotWriter, MotWriter]:
    """One object on 12 frames, detected on all but 5-7: the live and the filled tracks."""
    tr = ByteTracker(TrackerSettings(min_hits=3))
    live, filled = MotWriter(), MotWriter(filler=TrackFiller(max_gap=30))
    for f in range(12):
        boxes = [] if 5 <= f <= 7 else [_moving(f)]
        batch = tr.update(DetectionArray.of(boxes, [0.9] * len(boxes), [1] * len(boxes)))
        live.add(f, batch)
        filled.add(f, batch)
    return live, filled


def test_the_tracks_file_gets_tentative_frames_once_confirmed_and_interpolated_gaps() -> None:
    """An object moving 4 px a frame, detected on frames 0-4, hidden on 5-7, seen again on
    8-11: the live tracks miss frames 0-1 (tentative) and 5-7 (lost); the filled tracks
    have every frame, the gap's boxes on the line between frames 4 and 8, score 0."""
    live, filled = _occlusion_run()
    assert sorted(live.data().frames.tolist()) == [3, 4, 5, 9, 10, 11, 12]
    data = filled.data()
    order = np.argsort(data.frames)
    assert data.frames[order].tolist() == list(range(1, 13))
    assert set(data.ids.tolist()) == {1} and set(data.class_ids.tolist()) == {1}
    gap = data.select(np.isin(data.frames, [6, 7, 8]))
    assert gap.conf.tolist() == [0.0, 0.0, 0.0]
    boxes_4 = data.xyxy[data.frames == 5][0]
    boxes_8 = data.xyxy[data.frames == 9][0]
    for k, row in enumerate(gap.xyxy[np.argsort(gap.frames)], 1):
        assert np.allclose(row, boxes_4 + (boxes_8 - boxes_4) * k / 4)
    first = data.select(np.isin(data.frames, [1, 2]))
    # the filter's boxes of those frames (a new track has no velocity yet: within 1 px)
    assert np.allclose(first.xyxy[np.argsort(first.frames)], [_moving(0), _moving(1)], atol=1)
    assert (first.conf == 0.9).all()


def test_filled_tracks_score_higher_than_live_tracks_on_an_occlusion() -> None:
    """Ground truth: the object on all 12 frames. The live tracks miss 5 of them; the filled
    ones none (IDF1 1.0), so the score of a run counts what the tracker knew."""
    gt = MotWriter()
    for f in range(12):
        gt.add_row(f, 1, _moving(f), 1.0, 1, 1.0)
    live, filled = _occlusion_run()
    assert score_tracking(gt.data(), live.data()).idf1 < 0.8
    assert score_tracking(gt.data(), filled.data()).idf1 == pytest.approx(1.0)


def test_a_track_dropped_unconfirmed_or_lost_too_long_fills_nothing() -> None:
    filler = TrackFiller(max_gap=2)
    # a tentative track seen twice, then dropped: nothing, ever
    tr = ByteTracker(TrackerSettings(min_hits=3, lost_frames=10))
    rows = []
    for f in range(2):
        rows += filler.rows(f, tr.update(DetectionArray.of([_moving(f)], [0.9], [0])))
    rows += filler.rows(2, tr.update(DetectionArray.of([], [], [])))
    assert rows == [] and filler._pending == {}
    # a confirmed track lost for 4 frames (more than max_gap 2) is found again: no fill
    for f in range(3, 6):
        rows += filler.rows(f, tr.update(DetectionArray.of([_moving(f)], [0.9], [0])))
    for f in range(6, 10):
        rows += filler.rows(f, tr.update(DetectionArray.of([], [], [])))
    assert filler._last == {}  # forgotten once older than the gap it may fill
    for f in range(10, 12):
        rows += filler.rows(f, tr.update(DetectionArray.of([_moving(f)], [0.9], [0])))
    assert [r[0] for r in rows] == [3, 4, 5, 10, 11] and {r[1] for r in rows} == {2}


def test_the_filler_holds_only_live_tracks_on_an_endless_stream() -> None:
    """Objects come and go for 3000 frames: what the filler holds stays small."""
    rng = np.random.default_rng(0)
    tr = ByteTracker(TrackerSettings(min_hits=2, lost_frames=5))
    filler = TrackFiller(max_gap=5)
    held = []
    for f in range(3000):
        phase = (f // 40) % 2
        boxes = [[x, 10 + 50 * i, x + 20, 30 + 50 * i] for i, x in enumerate([5 * (f % 40)] * 4)]
        boxes = boxes if phase == 0 else boxes[:2]
        keep = rng.random(len(boxes)) > 0.2
        picked = [b for b, k in zip(boxes, keep, strict=True) if k]
        filler.rows(f, tr.update(DetectionArray.of(picked, [0.9] * len(picked), [0] * len(picked))))
        held.append(len(filler._last) + len(filler._pending))
    assert tr.next_id > 100  # many tracks came and went
    assert max(held[-1000:]) <= 12


def test_the_edge_tracks_file_is_filled_by_default(tmp_path: Path) -> None:
    section = TrackSection()
    assert section.fill_gaps
    filler = TrackFiller.from_config(section)
    assert filler is not None and filler.max_gap == section.lost_frames
    assert TrackFiller.from_config(TrackSection(fill_gaps=False)) is None
    tr = ByteTracker(TrackerSettings(min_hits=3))
    w = MotFileWriter(tmp_path / "tracks.txt", filler)
    for f in range(12):
        boxes = [] if 5 <= f <= 7 else [_moving(f)]
        w.add(f, tr.update(DetectionArray.of(boxes, [0.9] * len(boxes), [1] * len(boxes))))
    w.close()
    assert sorted(read_mot(tmp_path / "tracks.txt").frames.tolist()) == list(range(1, 13))
    assert w.rows == 12


def test_short_submission_forms_are_read(tmp_path: Path) -> None:
    p = tmp_path / "sub.txt"
    p.write_text("1,1,10,10,20,20\n2,1,11,10,20,20,0.9,-1,-1,-1\n# comment\n\n")
    data = read_mot(p)
    assert data.frames.tolist() == [1, 2] and data.class_ids.tolist() == [-1, -1]
    assert data.xyxy[1].tolist() == [11, 10, 31, 30] and data.conf.tolist() == [1.0, 0.9]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1,1,10,10\n", r"t.txt:1: expected 6, 7, 9 or 10 comma-separated values"),
        ("1,1,10,10,20,20\n1,x,1,1,1,1\n", r"t.txt:2: not a number"),
        ("0,1,10,10,20,20\n", r"t.txt:1: frame numbers start at 1, got 0"),
        ("1,1,10,10,-20,20\n", r"t.txt:1: expected a finite box with width and height >= 0"),
        ("1,1,10,10,nan,20\n", r"t.txt:1: expected a finite box"),
    ],
)
def test_bad_lines_name_the_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "t.txt").write_text(text)
    with pytest.raises(DatasetError, match=message):
        read_mot(tmp_path / "t.txt")


def _mot(rows: list[tuple[int, int, tuple[int, int, int, int], int]]) -> MotData:
    w = MotWriter()
    for frame, tid, box, cls in rows:
        w.add_row(frame - 1, tid, box, 1.0, cls, 1.0)
    return w.data()


GT = _mot([(f, 1, A, 0) for f in range(1, 5)] + [(f, 2, B, 0) for f in range(1, 5)])


def test_scores_of_a_hand_computed_case() -> None:
    """gt: 2 objects x 4 frames. hyp: 10 follows object 1; object 2 is 20 then 21 (an id
    switch at frame 3); 30 is a false positive on frame 1. MOTA = 1 - (0 FN + 1 FP + 1
    IDSW) / 8 = 0.75; IDF1 = 2 IDTP / (|gt| + |hyp|) = 2 * 6 / (8 + 9) = 12/17."""
    hyp = _mot(
        [(f, 10, A, 0) for f in range(1, 5)]
        + [(1, 20, B, 0), (2, 20, B, 0), (3, 21, B, 0), (4, 21, B, 0), (1, 30, C, 0)]
    )
    s = score_tracking(GT, hyp)
    assert (s.id_switches, s.false_positives, s.misses, s.gt_boxes) == (1, 1, 0, 8)
    assert s.mota == pytest.approx(0.75)
    assert s.idf1 == pytest.approx(12 / 17)
    assert s.motp == pytest.approx(1.0) and s.frames == 4 and s.predicted_tracks == 4


def test_class_aware_scoring_refuses_a_track_of_the_wrong_class() -> None:
    hyp = _mot(
        [(f, 10, A, 0) for f in range(1, 5)]
        + [(1, 20, B, 0), (2, 20, B, 0), (3, 21, B, 1), (4, 21, B, 1), (1, 30, C, 0)]
    )
    aware = score_tracking(GT, hyp)
    assert (aware.misses, aware.false_positives, aware.id_switches) == (2, 3, 0)
    assert aware.mota == pytest.approx(1 - 5 / 8)
    agnostic = score_tracking(GT, hyp, class_aware=False)
    assert agnostic.mota == pytest.approx(0.75)


def test_ignored_ground_truth_is_neither_a_miss_nor_a_false_positive() -> None:
    w = MotWriter()
    for f in range(3):
        w.add_row(f, 1, A, 1.0, 0, 1.0)
        w.add_row(f, 2, B, 1.0, 0, 0.05)  # barely visible: ignored below 0.2
    hyp = _mot([(f, 7, A, 0) for f in range(1, 4)] + [(f, 8, B, 0) for f in range(1, 4)])
    s = score_tracking(w.data(), hyp, min_visibility=0.2)
    assert (s.gt_boxes, s.misses, s.false_positives, s.mota) == (3, 0, 0, 1.0)


def test_scoring_without_the_extra_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "motmetrics" else real(name, *a),
    )
    with pytest.raises(MissingDependencyError, match=r'pip install "vision-core\[track-eval\]"'):
        score_tracking(GT, GT)


def test_count_errors_per_line_class_and_direction() -> None:
    true = flatten_counts({"gate": {"circle": {"in": 3, "out": 2}, "square": {"in": 1}}})
    counted = {("gate", "circle", "in"): 3, ("gate", "circle", "out"): 1, ("gate", "x", "in"): 1}
    s = score_counts(true, counted)
    assert s.errors == {
        ("gate", "circle", "out"): -1,
        ("gate", "square", "in"): -1,
        ("gate", "x", "in"): 1,
    }
    assert (s.abs_error, s.true_total, s.counted_total) == (3, 6, 5)
