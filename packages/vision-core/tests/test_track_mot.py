"""MOT files and scores: round trip, bad lines, a hand-computed IDF1/MOTA, count errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vision_core.errors import DatasetError, MissingDependencyError
from vision_core.track.mot import MotData, MotWriter, read_mot, write_mot
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
