"""YOLO label lines: one parser, one strictness, errors that name the file and line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vision_core.errors import LabelFormatError
from vision_core.formats.yolo import (
    YoloBox,
    boxes_to_arrays,
    check_label_file,
    from_detection,
    label_path_for,
    parse_line,
    read_label_file,
    render,
)
from vision_core.types import Detection


@pytest.mark.parametrize(
    ("line", "box"),
    [
        ("0 0.5 0.5 0.2 0.2", YoloBox(0, 0.5, 0.5, 0.2, 0.2)),
        ("  2\t0.1 0.9   0.05 0.05 ", YoloBox(2, 0.1, 0.9, 0.05, 0.05)),
        ("1 0.5 0.5 0.2 0.2 0.77", YoloBox(1, 0.5, 0.5, 0.2, 0.2, 0.77)),
        ("0 1.005 0.5 0.2 0.2", YoloBox(0, 1.005, 0.5, 0.2, 0.2)),  # rounding slack
    ],
)
def test_good_lines(line: str, box: YoloBox) -> None:
    assert parse_line(line, nc=3) == box


@pytest.mark.parametrize(
    ("line", "nc", "message"),
    [
        ("0 0.5 0.5 0.2", None, "expected 5 fields (class cx cy w h), got 4"),
        ("0 0.5 0.5 0.2 0.2 0.9 7", None, "expected 5 fields (class cx cy w h), got 7"),
        ("a 0.5 0.5 0.2 0.2", None, "class id must be an integer, got 'a'"),
        ("1.0 0.5 0.5 0.2 0.2", None, "class id must be an integer, got '1.0'"),
        ("-1 0.5 0.5 0.2 0.2", None, "class id -1 out of range"),
        ("3 0.5 0.5 0.2 0.2", 3, "class id 3 out of range (dataset has 3 classes: 0..2)"),
        ("0 x 0.5 0.2 0.2", None, "cx cy w h must be numbers"),
        ("0 0.5 0.5 0 0.2", None, "with w, h > 0"),
        ("0 1.5 0.5 0.2 0.2", None, "must be normalised to 0..1"),
        ("0 nan 0.5 0.2 0.2", None, "must be normalised to 0..1"),
        ("0 0.5 0.5 0.2 0.2 1.5", None, "score must be in 0..1, got 1.5"),
    ],
)
def test_bad_lines_say_what_is_wrong(line: str, nc: int | None, message: str) -> None:
    with pytest.raises(LabelFormatError) as err:
        parse_line(line, nc)
    assert message in str(err.value)


def test_files_name_the_line_and_a_missing_file_has_no_objects(tmp_path: Path) -> None:
    assert read_label_file(tmp_path / "none.txt") == []
    f = tmp_path / "a.txt"
    f.write_text("0 0.5 0.5 0.2 0.2\n\n1 0.5 0.5 0.2\n")
    with pytest.raises(LabelFormatError, match=r"a\.txt line 3: expected 5 fields"):
        read_label_file(f)
    problems: list[str] = []
    assert check_label_file(f, 3, problems) == 1
    assert problems == [f"{f} line 3: expected 5 fields (class cx cy w h), got 4: '1 0.5 0.5 0.2'"]


def test_training_labels_refuse_a_score_column_predictions_keep_it(tmp_path: Path) -> None:
    f = tmp_path / "p.txt"
    f.write_text("0 0.5 0.5 0.2 0.2 0.9\n")
    problems: list[str] = []
    assert check_label_file(f, 1, problems) == 0 and "score column" in problems[0]
    assert check_label_file(f, 1, [], scores=True) == 1
    xyxy, scores, cls = boxes_to_arrays(read_label_file(f), 100, 50)
    np.testing.assert_allclose(xyxy, [[40.0, 20.0, 60.0, 30.0]])
    assert scores.tolist() == [0.9] and cls.tolist() == [0]


def test_detections_round_trip_through_label_lines() -> None:
    det = Detection(class_id=2, class_name="t", score=0.8, xyxy=(-5.0, 10.0, 50.0, 30.0))
    box = from_detection(det, 100, 40)  # clipped to the image
    assert box is not None
    assert render([box]) == "2 0.250000 0.500000 0.500000 0.500000\n"
    empty = Detection(class_id=0, class_name="c", score=0.5, xyxy=(120.0, 0.0, 130.0, 5.0))
    assert from_detection(empty, 100, 40) is None


def test_label_path_follows_the_last_images_component() -> None:
    assert label_path_for(Path("d/images/train/a.png")) == Path("d/labels/train/a.txt")
    assert label_path_for(Path("images/x/images/b.jpg")) == Path("images/x/labels/b.txt")
