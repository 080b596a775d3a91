"""Counting lines and polygon zones as the config gives them: checks and pixel geometry.

Pure Python on purpose: `load_config` runs these checks, and loading a config never needs
numpy. The counters (`vision_core.track.lines`, `vision_core.track.zones`) take the
`Region` objects made here.

Coordinates: `track.coords = "normalized"` (the default) reads points as fractions 0..1 of
the frame width and height, so one config fits every camera resolution; `"pixels"` reads
them as pixels of the frame, which are checked against the frame size once it is known
(`check_points_in_frame`).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from vision_core.errors import ConfigError

if TYPE_CHECKING:
    from vision_core.config.schema import TrackLine, TrackSection, TrackZone

__all__ = [
    "LineRegion",
    "ZoneRegion",
    "check_class_names",
    "check_points_in_frame",
    "check_track_section",
    "polygon_self_intersection",
    "resolve_regions",
    "segments_intersect",
]

Point = tuple[float, float]
MAX_NAME = 200  # the event structs' name bound


@dataclass(frozen=True, slots=True)
class LineRegion:
    """A counting line in pixels: `in_sign` is the sign of `side()` on the "in" side."""

    name: str
    start: Point
    end: Point
    in_sign: int
    classes: frozenset[str]


@dataclass(frozen=True, slots=True)
class ZoneRegion:
    """A polygon zone in pixels."""

    name: str
    polygon: tuple[Point, ...]
    classes: frozenset[str]


def _fmt(p: Sequence[float]) -> str:
    return "[" + ", ".join(f"{v:g}" for v in p) + "]"


def _fmt_all(points: Sequence[Sequence[float]]) -> str:
    return "[" + ", ".join(_fmt(p) for p in points) + "]"


def _cross(o: Point, a: Point, b: Point) -> float:
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])


def _on_segment(p: Point, q: Point, r: Point) -> bool:
    """r lies within the bounding box of segment pq (for collinear points)."""
    return min(p[0], q[0]) <= r[0] <= max(p[0], q[0]) and min(p[1], q[1]) <= r[1] <= max(p[1], q[1])


def segments_intersect(p1: Point, p2: Point, q1: Point, q2: Point) -> bool:
    """True when the closed segments p1p2 and q1q2 share a point (touching counts)."""
    d1, d2 = _cross(q1, q2, p1), _cross(q1, q2, p2)
    d3, d4 = _cross(p1, p2, q1), _cross(p1, p2, q2)
    if ((d1 > 0 > d2) or (d1 < 0 < d2)) and ((d3 > 0 > d4) or (d3 < 0 < d4)):
        return True
    return (
        (d1 == 0 and _on_segment(q1, q2, p1))
        or (d2 == 0 and _on_segment(q1, q2, p2))
        or (d3 == 0 and _on_segment(p1, p2, q1))
        or (d4 == 0 and _on_segment(p1, p2, q2))
    )


def polygon_self_intersection(points: Sequence[Point]) -> tuple[int, int] | None:
    """The first pair of edges (i, j) of a closed polygon that meet other than at their
    shared corner, or None when the polygon is simple. Edge i runs from point i to i+1."""
    n = len(points)
    edges = [(points[i], points[(i + 1) % n]) for i in range(n)]
    for i in range(n):
        for j in range(i + 1, n):
            adjacent = j == i + 1 or (i == 0 and j == n - 1)
            a1, a2 = edges[i]
            b1, b2 = edges[j]
            if adjacent:
                # neighbours share one corner; they overlap only if they fold back on
                # each other (collinear and pointing the same way from the shared corner)
                shared, a_far, b_far = (a2, a1, b2) if j == i + 1 else (a1, a2, b1)
                if _cross(shared, a_far, b_far) == 0 and (
                    (a_far[0] - shared[0]) * (b_far[0] - shared[0])
                    + (a_far[1] - shared[1]) * (b_far[1] - shared[1])
                    > 0
                ):
                    return (i, j)
                continue
            if segments_intersect(a1, a2, b1, b2):
                return (i, j)
    return None


def _suggest(word: str, choices: Iterable[str]) -> str:
    match = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else ""


def _check_points(path: str, points: Sequence[Point], coords: str, problems: list[str]) -> bool:
    ok = True
    for i, p in enumerate(points):
        if coords == "normalized" and not (0.0 <= p[0] <= 1.0 and 0.0 <= p[1] <= 1.0):
            problems.append(
                f"{path}[{i}]: expected normalized coordinates 0..1 (track.coords = "
                f"'normalized'; set track.coords = 'pixels' for pixels), got {_fmt(p)}"
            )
            ok = False
        elif coords == "pixels" and (p[0] < 0 or p[1] < 0):
            problems.append(f"{path}[{i}]: expected pixel coordinates >= 0, got {_fmt(p)}")
            ok = False
    return ok


def _check_shape(
    path: str, pts: Sequence[Point], counted: bool, expected: str, coords: str, problems: list[str]
) -> bool:
    """The number of points (`counted`: it is right; `expected`: what it should be) and
    each point's coordinates; False after a problem."""
    if not counted:
        problems.append(
            f"{path}.points: expected {expected}, got {len(pts)} point(s)"
            + (f" {_fmt_all(pts)}" if pts else "")
        )
        return False
    return _check_points(f"{path}.points", pts, coords, problems)


def _check_line(path: str, line: TrackLine, coords: str, problems: list[str]) -> None:
    pts = line.points
    if not _check_shape(
        path, pts, len(pts) == 2, "2 points [[x1, y1], [x2, y2]]", coords, problems
    ):
        return
    if pts[0] == pts[1]:
        problems.append(
            f"{path}.points: start and end are the same point {_fmt(pts[0])}; a line needs "
            "two different points"
        )


def _check_zone(path: str, zone: TrackZone, coords: str, problems: list[str]) -> None:
    pts = zone.points
    if not _check_shape(path, pts, len(pts) >= 3, "3 or more [x, y] corners", coords, problems):
        return
    for i in range(len(pts)):
        if pts[i] == pts[(i + 1) % len(pts)]:
            problems.append(
                f"{path}.points[{(i + 1) % len(pts)}]: repeats corner {i} {_fmt(pts[i])}; "
                "list each corner once"
            )
            return
    if all(_cross(pts[0], pts[1], p) == 0 for p in pts[2:]):
        problems.append(
            f"{path}.points: the corners lie on one line {_fmt_all(pts)}; a zone needs an area"
        )
        return
    crossing = polygon_self_intersection(pts)
    if crossing is not None:
        i, j = crossing
        n = len(pts)
        problems.append(
            f"{path}.points: the polygon crosses itself: edge {_fmt(pts[i])}-"
            f"{_fmt(pts[(i + 1) % n])} meets edge {_fmt(pts[j])}-{_fmt(pts[(j + 1) % n])}; "
            "list the corners in order around the zone"
        )


def _check_classes(path: str, classes: Sequence[str], known: set[str], problems: list[str]) -> None:
    for i, name in enumerate(classes):
        if not name.strip():
            problems.append(f"{path}.classes[{i}]: expected a class name, got ''")
        elif known and name not in known:
            problems.append(
                f"{path}.classes[{i}]: unknown class {name!r}{_suggest(name, known)} "
                f"(classes: {', '.join(sorted(known))})"
            )


def check_track_section(section: TrackSection, *, class_names: Iterable[str] = ()) -> list[str]:
    """Every problem of `track` lines and zones, each naming its key path and value.

    class_names: the known classes (from `class_map`); empty = not known yet, so class
    names are checked later with `check_class_names` once the model's names are.
    """
    problems: list[str] = []
    known = set(class_names)
    if section.low_thresh > section.high_thresh:
        problems.append(
            f"track.low_thresh: expected <= track.high_thresh ({section.high_thresh:g}), "
            f"got {section.low_thresh:g}"
        )
    seen: dict[str, str] = {}
    items: list[tuple[str, TrackLine | TrackZone]] = [
        *((f"track.lines[{i}]", line) for i, line in enumerate(section.lines)),
        *((f"track.zones[{i}]", zone) for i, zone in enumerate(section.zones)),
    ]
    for path, item in items:
        name = item.name
        if not name.strip():
            problems.append(f"{path}.name: required (a name events and counts carry), got ''")
        elif len(name) > MAX_NAME:
            problems.append(f"{path}.name: expected at most {MAX_NAME} characters, got {len(name)}")
        elif name in seen:
            problems.append(
                f"{path}.name: {name!r} is already the name of {seen[name]}; names must be "
                "unique among lines and zones"
            )
        else:
            seen[name] = path
        if path.startswith("track.lines"):
            _check_line(path, item, section.coords, problems)  # type: ignore[arg-type]
        else:
            _check_zone(path, item, section.coords, problems)  # type: ignore[arg-type]
        _check_classes(path, item.classes, known, problems)
    return problems


def check_class_names(section: TrackSection, class_names: Iterable[str]) -> None:
    """Raise ConfigError when a line or zone names a class the model does not have."""
    known = set(class_names)
    problems: list[str] = []
    for i, line in enumerate(section.lines):
        _check_classes(f"track.lines[{i}]", line.classes, known, problems)
    for i, zone in enumerate(section.zones):
        _check_classes(f"track.zones[{i}]", zone.classes, known, problems)
    if problems:
        raise ConfigError(problems)


def check_points_in_frame(section: TrackSection, width: int, height: int) -> None:
    """Raise ConfigError naming each pixel point outside a width x height frame.

    Normalized points always fit; pixel points can only be checked once the frame size is
    known (the first frame of the camera or video).
    """
    if section.coords != "pixels":
        return
    groups: list[tuple[str, Sequence[TrackLine | TrackZone]]] = [
        ("track.lines", section.lines),
        ("track.zones", section.zones),
    ]
    problems = [
        f"{kind}[{i}].points[{j}]: outside the {width}x{height} frame (x 0..{width}, "
        f"y 0..{height}), got {_fmt(p)}"
        for kind, items in groups
        for i, item in enumerate(items)
        for j, p in enumerate(item.points)
        if not (0 <= p[0] <= width and 0 <= p[1] <= height)
    ]
    if problems:
        raise ConfigError(problems)


def _to_pixels(points: Sequence[Point], coords: str, width: int, height: int) -> tuple[Point, ...]:
    if coords == "pixels":
        return tuple((float(x), float(y)) for x, y in points)
    return tuple((float(x) * width, float(y) * height) for x, y in points)


def resolve_regions(
    section: TrackSection, width: int, height: int
) -> tuple[list[LineRegion], list[ZoneRegion]]:
    """The configured lines and zones in pixels of a width x height frame (checked)."""
    check_points_in_frame(section, width, height)
    lines = [
        LineRegion(
            name=line.name,
            start=(pts := _to_pixels(line.points, section.coords, width, height))[0],
            end=pts[1],
            in_sign=line_in_sign(line.in_side),
            classes=frozenset(line.classes),
        )
        for line in section.lines
    ]
    zones = [
        ZoneRegion(
            name=zone.name,
            polygon=_to_pixels(zone.points, section.coords, width, height),
            classes=frozenset(zone.classes),
        )
        for zone in section.zones
    ]
    return lines, zones


def line_in_sign(in_side: str) -> int:
    """The sign of `side()` on the named side of a line.

    side(p) = cross(end - start, p - start) in image coordinates (y grows downwards). Seen
    on the image from `start` looking at `end`, a point on the LEFT gives a negative cross
    product (e.g. start (0, 5), end (10, 5): a point above the line, y < 5, is on the left
    and gives 10 * (y - 5) < 0).
    """
    return -1 if in_side == "left" else 1
