"""`vision-label eval` warns when --pred and --truth name their classes differently."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from vision_label.cli import main


def _labels(root: Path, names: list[str]) -> Path:
    (root / "labels").mkdir(parents=True)
    (root / "labels" / "a.txt").write_text("0 0.5 0.5 0.2 0.2\n1 0.2 0.2 0.1 0.1\n")
    (root / "classes.txt").write_text("".join(f"{n}\n" for n in names))
    return root / "labels"


def test_eval_warns_on_other_class_names_and_still_scores_by_id(tmp_path: Path) -> None:
    truth = _labels(tmp_path / "truth", ["circle", "square"])
    pred = _labels(tmp_path / "pred", ["ball", "box"])
    res = CliRunner().invoke(main, ["eval", "--pred", str(pred), "--truth", str(truth), "--json"])
    assert res.exit_code == 0, res.output
    warning = (
        "Warning: class names differ: --pred has [0: ball, 1: box], --truth has "
        "[0: circle, 1: square]; boxes are matched by class id"
    )
    assert warning in res.stderr
    score = json.loads(res.stdout)
    assert score["precision"] == 1.0 and score["warnings"] == [warning.removeprefix("Warning: ")]
    assert set(score["per_class"]) == {"circle", "square"}  # the truth's names


def test_eval_with_the_same_names_has_no_warning(tmp_path: Path) -> None:
    truth = _labels(tmp_path / "truth", ["circle", "square"])
    pred = _labels(tmp_path / "pred", ["circle", "square"])
    res = CliRunner().invoke(main, ["eval", "--pred", str(pred), "--truth", str(truth), "--json"])
    assert res.exit_code == 0 and res.stderr == ""
    assert json.loads(res.stdout)["warnings"] == []
