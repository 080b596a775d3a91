"""The [track] config: lines and zones as arrays of tables, each problem by key path."""

from __future__ import annotations

import json
from typing import Any

import pytest

from vision_core.config import build_config, config_to_dict, describe_schema
from vision_core.config.schema import TrackSection
from vision_core.errors import ConfigError
from vision_core.track.regions import (
    check_class_names,
    check_points_in_frame,
    polygon_self_intersection,
    resolve_regions,
)

GATE = {"name": "gate", "points": [[0.5, 0.1], [0.5, 0.9]]}
DOCK = {"name": "dock", "points": [[0.1, 0.1], [0.4, 0.1], [0.4, 0.4], [0.1, 0.4]]}


def problems(track: dict[str, Any], **top: Any) -> list[str]:
    with pytest.raises(ConfigError) as err:
        build_config({"track": track, **top})
    return err.value.problems


BAD = [
    pytest.param(
        {"lines": [GATE, {"name": "x", "points": [[0.2, 0.3], [0.2, 0.3]]}]},
        "track.lines[1].points: start and end are the same point [0.2, 0.3]",
        id="line-identical-points",
    ),
    pytest.param(
        {"lines": [{"name": "x", "points": [[0.2, 0.3]]}]},
        "track.lines[0].points: expected 2 points [[x1, y1], [x2, y2]], got 1 point(s) [[0.2, 0.3]]",
        id="line-one-point",
    ),
    pytest.param(
        {"zones": [{"name": "z", "points": [[0, 0], [1, 1]]}]},
        "track.zones[0].points: expected 3 or more [x, y] corners, got 2 point(s)",
        id="zone-two-points",
    ),
    pytest.param(
        {"zones": [{"name": "z", "points": [[0, 0], [1, 1], [1, 0], [0, 1]]}]},
        "track.zones[0].points: the polygon crosses itself: edge [0, 0]-[1, 1] meets edge "
        "[1, 0]-[0, 1]",
        id="zone-self-intersecting-bowtie",
    ),
    pytest.param(
        {"zones": [{"name": "z", "points": [[0, 0], [0.5, 0.5], [1, 1]]}]},
        "track.zones[0].points: the corners lie on one line",
        id="zone-collinear",
    ),
    pytest.param(
        {"zones": [{"name": "z", "points": [[0, 0], [0.5, 0], [0.5, 0], [0, 0.5]]}]},
        "track.zones[0].points[2]: repeats corner 1 [0.5, 0]",
        id="zone-repeated-corner",
    ),
    pytest.param(
        {"lines": [{"name": "x", "points": [[0.5, 0.1], [1.2, 0.9]]}]},
        "track.lines[0].points[1]: expected normalized coordinates 0..1 (track.coords = "
        "'normalized'; set track.coords = 'pixels' for pixels), got [1.2, 0.9]",
        id="normalized-point-outside",
    ),
    pytest.param(
        {"coords": "pixels", "zones": [{"name": "z", "points": [[0, 0], [-5, 10], [10, 10]]}]},
        "track.zones[0].points[1]: expected pixel coordinates >= 0, got [-5, 10]",
        id="negative-pixel-point",
    ),
    pytest.param(
        {"lines": [GATE], "zones": [{**DOCK, "name": "gate"}]},
        "track.zones[0].name: 'gate' is already the name of track.lines[0]; names must be "
        "unique among lines and zones",
        id="duplicate-name-across-lines-and-zones",
    ),
    pytest.param(
        {"lines": [{"points": [[0.5, 0.1], [0.5, 0.9]]}]},
        "track.lines[0].name: required",
        id="missing-name",
    ),
    pytest.param(
        {"lines": [{**GATE, "classes": ["circle", "sqare"]}]},
        "track.lines[0].classes[1]: unknown class 'sqare' (did you mean 'square'?)",
        id="unknown-class-name",
    ),
    pytest.param(
        {"lines": [{**GATE, "side": "left"}]},
        "track.lines[0].side: unknown key (did you mean 'in_side'?)",
        id="unknown-key-in-a-line",
    ),
    pytest.param(
        {"lines": [{**GATE, "in_side": "up"}]},
        "track.lines[0].in_side: expected one of 'left', 'right', got 'up'",
        id="bad-in-side",
    ),
    pytest.param(
        {"lines": [{"name": "x", "points": [[0.5, "a"], [0.5, 0.9]]}]},
        "track.lines[0].points[0][1]: expected a number, got 'a'",
        id="point-not-a-number",
    ),
    pytest.param(
        {"lines": {"name": "x"}},
        "track.lines: expected an array of tables, got a table",
        id="lines-not-an-array",
    ),
    pytest.param(
        {"lines": ["gate"]},
        "track.lines[0]: expected a table, got 'gate'",
        id="line-not-a-table",
    ),
    pytest.param(
        {"low_thresh": 0.6, "high_thresh": 0.5},
        "track.low_thresh: expected <= track.high_thresh (0.5), got 0.6",
        id="low-above-high",
    ),
    pytest.param(
        {"min_hits": 0},
        "track.min_hits: expected an integer >= 1, got 0",
        id="min-hits-zero",
    ),
]


@pytest.mark.parametrize(("track", "message"), BAD)
def test_bad_track_config_names_the_key_path_and_value(track: dict, message: str) -> None:
    found = problems(track, class_map={0: "circle", 1: "square", 2: "triangle"})
    assert any(p.startswith(message) for p in found), found


def test_point_with_three_numbers_reads_well() -> None:
    (p,) = problems({"lines": [{"name": "x", "points": [[0.5, 0.1, 0.3], [0.5, 0.9]]}]})
    assert p == "track.lines[0].points[0]: expected an array of 2 numbers, got [0.5, 0.1, 0.3]"


def test_every_problem_of_a_file_at_once() -> None:
    found = problems(
        {
            "lines": [GATE, {**GATE}],
            "zones": [{"name": "z", "points": [[0, 0], [1, 1]]}],
        }
    )
    assert len(found) == 2 and found[0].startswith("track.lines[1].name")


def test_llm_mode_cannot_track() -> None:
    (p,) = problems({"enabled": True}, deploy={"edge": {"mode": "llm"}})
    assert p.startswith("track.enabled: tracking needs every frame")


def test_a_good_track_config_and_its_round_trip() -> None:
    cfg = build_config(
        {
            "track": {
                "enabled": True,
                "anchor": "bottom_center",
                "lines": [{**GATE, "in_side": "right", "classes": ["circle"]}],
                "zones": [DOCK],
            }
        }
    )
    (line,) = cfg.track.lines
    assert line.points == ((0.5, 0.1), (0.5, 0.9)) and line.in_side == "right"
    assert cfg.track.zones[0].points[2] == (0.4, 0.4)
    plain = config_to_dict(cfg)
    assert plain["track"]["lines"][0]["points"] == [[0.5, 0.1], [0.5, 0.9]]
    json.dumps(plain)  # plain data all the way down
    assert build_config(plain) == cfg


def test_lines_can_be_set_on_the_command_line_as_json() -> None:
    cfg = build_config({}, ["track.lines=" + json.dumps([GATE]), "track.coords=normalized"])
    assert cfg.track.lines[0].name == "gate"
    with pytest.raises(ConfigError, match=r"track\.lines: expected an array of tables as JSON"):
        build_config({}, ["track.lines=[{oops"])


def test_pixel_points_are_checked_against_the_frame() -> None:
    section = TrackSection(
        coords="pixels",
        lines=build_config(
            {
                "track": {
                    "coords": "pixels",
                    "lines": [{"name": "g", "points": [[10, 10], [700, 10]]}],
                }
            }
        ).track.lines,
    )
    with pytest.raises(ConfigError) as err:
        check_points_in_frame(section, 640, 480)
    assert err.value.problems == [
        "track.lines[0].points[1]: outside the 640x480 frame (x 0..640, y 0..480), got [700, 10]"
    ]
    check_points_in_frame(section, 800, 480)  # fits


def test_normalized_points_resolve_to_pixels() -> None:
    cfg = build_config({"track": {"lines": [GATE], "zones": [DOCK]}})
    (line,), (zone,) = resolve_regions(cfg.track, 640, 480)
    assert line.start == (320.0, 48.0) and line.end == (320.0, 432.0)
    assert line.in_sign == -1  # default in_side "left"
    assert zone.polygon[2] == pytest.approx((256.0, 192.0))


def test_class_names_checked_once_the_model_is_known() -> None:
    cfg = build_config({"track": {"lines": [{**GATE, "classes": ["car"]}]}})  # no class_map
    with pytest.raises(ConfigError, match=r"track.lines\[0\].classes\[0\]: unknown class 'car'"):
        check_class_names(cfg.track, ["circle", "square"])
    check_class_names(cfg.track, ["car", "bus"])


@pytest.mark.parametrize(
    ("polygon", "crossing"),
    [
        ([(0, 0), (4, 0), (4, 4), (0, 4)], None),
        ([(0, 0), (4, 0), (0, 4), (4, 4)], (1, 3)),
        ([(0, 0), (4, 0), (2, 0), (2, 3)], (0, 1)),  # folds back along its own edge
        ([(0, 0), (4, 0), (4, 4), (2, -1), (0, 4)], (0, 2)),
    ],
)
def test_polygon_self_intersection(polygon: list, crossing: tuple | None) -> None:
    assert polygon_self_intersection(polygon) == crossing


def test_the_schema_describes_the_keys_of_array_items() -> None:
    rows = {path: (tname, default) for path, tname, default, _ in describe_schema()}
    assert rows["track.lines"] == ("array of tables", [])
    assert rows["track.lines[].points"] == ("array of [x, y]", [])
    assert rows["track.zones[].classes"] == ("array of strings", [])
