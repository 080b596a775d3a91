"""A synthetic moving-objects video with MOT ground truth and the true line crossings.

The shapes of `vision_core.synth` (circle, square, triangle, drawn by `draw_shape`) move
over a fixed gradient background with fresh noise on every frame:

- most enter at the left or right edge and cross the frame, some pausing for a while
  just past the middle line;
- some come up to the middle line and turn back before reaching it;
- they travel in a few shared lanes in both directions, so they pass in front of and
  behind each other (occlusion; each has a depth, nearer ones are drawn last).

`generate_tracking_video` writes, into one folder:

- `video.avi` (MJPG);
- `gt.txt`: MOT ground truth (`vision_core.track.mot`: frame, id, box clipped to the
  frame, conf 1, class id, visibility = the fraction of the shape's pixels seen);
- `scene.json`: size, fps, frames, class names, the counting lines (normalized points, as
  `[[track.lines]]` takes them) and the TRUE crossings per line, class and direction.

True crossings are geometric: the centre of an object's box moving from one side of a
line to the other through the line segment, frame to frame. The scene is built so that
every crossing is followed by many frames on the new side (no jitter in the truth), so a
counter fed the ground-truth boxes must find exactly these counts (a test checks it).
Deterministic by seed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from vision_core.config.schema import TrackLine
from vision_core.errors import require
from vision_core.fsutil import atomic_write_text
from vision_core.synth import CLASS_NAMES, draw_shape, shape_box

__all__ = [
    "SCENE_LINES",
    "SceneLine",
    "TrackingScene",
    "generate_tracking_video",
    "load_scene",
]

Point = tuple[float, float]


@dataclass(frozen=True, slots=True)
class SceneLine:
    """A counting line of the scene, normalized (as `[[track.lines]]` takes it)."""

    name: str
    start: Point
    end: Point
    in_side: Literal["left", "right"]


# "gate" spans the frame's middle; "upper" only the top half of x = 0.3, so objects in the
# lower lanes pass beside its end
SCENE_LINES = (
    SceneLine("gate", (0.5, 0.06), (0.5, 0.94), "right"),
    SceneLine("upper", (0.3, 0.04), (0.3, 0.5), "right"),
)


@dataclass(frozen=True, slots=True)
class TrackingScene:
    """A generated scene: its files and what is true about it."""

    root: Path
    video: Path
    gt: Path
    width: int
    height: int
    fps: float
    frames: int
    lines: tuple[TrackLine, ...]
    true_counts: dict[str, dict[str, dict[str, int]]]  # line -> class -> in/out -> n


@dataclass
class _Plan:
    """One object's script: class, size, colour and top-left position per frame."""

    obj_id: int
    cls: int
    size: int
    apex: int
    depth: float
    colour: tuple[int, int, int]
    xs: np.ndarray  # (frames,) top-left x, NaN when absent
    ys: np.ndarray


def _path(
    rng: np.random.Generator,
    frames: int,
    width: int,
    size: int,
    line_x: float,
) -> tuple[np.ndarray, float]:
    """x positions (top-left) over frames from spawn on, NaN after leaving; and y drift."""
    direction = 1 if rng.random() < 0.5 else -1
    speed = float(rng.uniform(1.5, 3.5))
    behaviour = rng.choice(["cross", "cross", "cross", "turn", "pause"], p=None)
    x = -size - 1.0 if direction > 0 else width + 1.0
    xs: list[float] = []
    pause_left = 0
    state = "go"
    half = size / 2
    if behaviour == "turn":
        gap = float(rng.uniform(0.4, 1.3)) * size  # centre stops this far before the line
        stop_at = line_x - direction * gap - half
    elif behaviour == "pause":
        stop_at = line_x + direction * float(rng.uniform(0.6, 1.5)) * size - half
    else:
        stop_at = None
    vy = float(rng.uniform(-0.25, 0.25))
    for _ in range(frames):
        xs.append(x)
        if state == "go":
            x += direction * speed
            if stop_at is not None and (x - stop_at) * direction >= 0:
                x = stop_at
                state = "pause"
                pause_left = int(rng.integers(4, 30))
        elif state == "pause":
            pause_left -= 1
            if pause_left <= 0:
                if behaviour == "turn":
                    direction = -direction
                state = "leave"
        else:
            x += direction * speed
        if x > width + 2 or x + size < -2:
            break
    out = np.full(frames, np.nan)
    out[: len(xs)] = xs
    return out, vy


def _plan_scene(
    rng: np.random.Generator,
    n_objects: int,
    frames: int,
    width: int,
    height: int,
    object_size: tuple[int, int],
    background: np.ndarray,
) -> list[_Plan]:
    lanes = np.linspace(0.18 * height, 0.82 * height, 5)
    line_x = SCENE_LINES[0].start[0] * width
    plans: list[_Plan] = []
    for obj_id in range(1, n_objects + 1):
        cls = int(rng.integers(0, 3))
        size = int(rng.integers(object_size[0], object_size[1] + 1))
        apex = int(rng.integers(0, size)) if cls == 2 else 0
        spawn = int(rng.integers(0, max(1, frames - frames // 4)))
        path, vy = _path(rng, frames - spawn, width, size, line_x)
        xs = np.full(frames, np.nan)
        xs[spawn:] = path
        y0 = float(rng.choice(lanes)) + float(rng.uniform(-6, 6)) - size / 2
        ys = np.where(np.isnan(xs), np.nan, y0 + vy * (np.arange(frames) - spawn))
        ys = np.clip(ys, 2, height - size - 2)
        # a colour far from the background along its lane
        row = background[int(np.clip(y0 + size / 2, 0, height - 1))].reshape(-1, 3).mean(0)
        colour = np.where(row > 127, rng.integers(0, 60, 3), rng.integers(195, 256, 3))
        plans.append(
            _Plan(
                obj_id,
                cls,
                size,
                apex,
                float(rng.random()),
                (int(colour[0]), int(colour[1]), int(colour[2])),
                xs,
                ys,
            )
        )
    return plans


def _background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    c0 = rng.integers(0, 256, 3).astype(np.float32)
    c1 = rng.integers(0, 256, 3).astype(np.float32)
    t = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :, None]
    img = (c0 * (1 - t) + c1 * t) * np.ones((height, 1, 1), np.float32)
    img += rng.normal(0, 8, img.shape).astype(np.float32)
    return img


def _side(px: float, py: float, a: tuple[float, float], b: tuple[float, float]) -> float:
    return (b[0] - a[0]) * (py - a[1]) - (b[1] - a[1]) * (px - a[0])


def _true_counts(
    tracks: dict[int, list[tuple[float, float]]],
    classes: dict[int, str],
    width: int,
    height: int,
) -> dict[str, dict[str, dict[str, int]]]:
    """Crossings of each line by each object's box centre, frame to frame, through the
    segment; direction from the line's in_side (left = negative cross product)."""
    out: dict[str, dict[str, dict[str, int]]] = {}
    for line in SCENE_LINES:
        a = (line.start[0] * width, line.start[1] * height)
        b = (line.end[0] * width, line.end[1] * height)
        in_sign = -1 if line.in_side == "left" else 1
        counts: dict[str, dict[str, int]] = {}
        for obj_id, centres in tracks.items():
            last: tuple[float, float] | None = None
            last_side = 0.0
            for p in centres:
                s = _side(p[0], p[1], a, b)
                if s == 0:
                    continue
                if last is not None and (s > 0) != (last_side > 0):
                    # where the step crosses the infinite line, along the segment
                    alpha = last_side / (last_side - s)
                    x = (last[0] + alpha * (p[0] - last[0]), last[1] + alpha * (p[1] - last[1]))
                    d = (b[0] - a[0], b[1] - a[1])
                    t = ((x[0] - a[0]) * d[0] + (x[1] - a[1]) * d[1]) / (d[0] ** 2 + d[1] ** 2)
                    if 0.0 <= t <= 1.0:
                        direction = "in" if (1 if s > 0 else -1) == in_sign else "out"
                        by = counts.setdefault(classes[obj_id], {"in": 0, "out": 0})
                        by[direction] += 1
                last, last_side = p, s
        out[line.name] = counts
    return out


def generate_tracking_video(
    out_dir: str | Path,
    *,
    seed: int = 0,
    frames: int = 450,
    width: int = 384,
    height: int = 216,
    fps: float = 15.0,
    objects: int = 16,
    object_size: tuple[int, int] = (24, 40),
    noise: float = 4.0,
) -> TrackingScene:
    """Write video.avi, gt.txt and scene.json into out_dir; deterministic by seed."""
    require("cv2", "vision-core[infer]", "synthetic video")
    import cv2

    from vision_core.track.mot import MotWriter, write_mot

    rng = np.random.default_rng(seed)
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    background = _background(rng, width, height)
    plans = _plan_scene(rng, objects, frames, width, height, object_size, background)
    order = sorted(plans, key=lambda p: p.depth)  # far first, near drawn over them
    full_area = {}
    for p in plans:
        mask = np.zeros((p.size + 2, p.size + 2), np.uint8)
        draw_shape(mask, p.cls, 0, 0, p.size, (1,), p.apex)
        full_area[p.obj_id] = int(mask.sum())

    video = root / "video.avi"
    tmp = root / ".video.tmp.avi"
    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter.fourcc(*"MJPG"), fps, (width, height))
    if not writer.isOpened():  # pragma: no cover - codec missing
        raise RuntimeError(f"cannot write video {video}")
    gt = MotWriter()
    centres: dict[int, list[tuple[float, float]]] = {p.obj_id: [] for p in plans}
    try:
        for f in range(frames):
            img = background + rng.normal(0, noise, background.shape).astype(np.float32)
            canvas = np.clip(img, 0, 255).astype(np.uint8)
            labels = np.full((height, width), -1, np.int32)
            here = [p for p in order if not np.isnan(p.xs[f])]
            for p in here:
                x0, y0 = round(float(p.xs[f])), round(float(p.ys[f]))
                draw_shape(canvas, p.cls, x0, y0, p.size, p.colour, p.apex)
                draw_shape(labels, p.cls, x0, y0, p.size, (p.obj_id,), p.apex)
            writer.write(canvas)
            for p in here:
                x0, y0 = round(float(p.xs[f])), round(float(p.ys[f]))
                bx1, by1, bx2, by2 = shape_box(p.cls, x0, y0, p.size)
                cx1, cy1 = max(bx1, 0), max(by1, 0)
                cx2, cy2 = min(bx2, width), min(by2, height)
                if cx2 <= cx1 or cy2 <= cy1:
                    continue
                seen = int((labels[cy1:cy2, cx1:cx2] == p.obj_id).sum())
                if seen == 0:
                    continue  # fully hidden or not yet in the frame
                vis = min(1.0, seen / full_area[p.obj_id])
                gt.add_row(f, p.obj_id, (cx1, cy1, cx2, cy2), 1.0, p.cls, round(vis, 3))
                centres[p.obj_id].append(((cx1 + cx2) / 2, (cy1 + cy2) / 2))
    finally:
        writer.release()
    tmp.replace(video)
    write_mot(root / "gt.txt", gt.data())
    classes = {p.obj_id: CLASS_NAMES[p.cls] for p in plans}
    counts = _true_counts(centres, classes, width, height)
    meta = {
        "width": width,
        "height": height,
        "fps": fps,
        "frames": frames,
        "seed": seed,
        "names": {str(k): v for k, v in CLASS_NAMES.items()},
        "lines": [
            {"name": ln.name, "points": [list(ln.start), list(ln.end)], "in_side": ln.in_side}
            for ln in SCENE_LINES
        ],
        "true_counts": counts,
    }
    atomic_write_text(root / "scene.json", json.dumps(meta, indent=1) + "\n")
    return load_scene(root)


def load_scene(root: str | Path) -> TrackingScene:
    """A scene written by `generate_tracking_video`."""
    r = Path(root)
    meta = json.loads((r / "scene.json").read_text(encoding="utf-8"))
    return TrackingScene(
        root=r,
        video=r / "video.avi",
        gt=r / "gt.txt",
        width=int(meta["width"]),
        height=int(meta["height"]),
        fps=float(meta["fps"]),
        frames=int(meta["frames"]),
        lines=tuple(
            TrackLine(
                name=str(ln["name"]),
                points=tuple((float(x), float(y)) for x, y in ln["points"]),
                in_side=ln["in_side"],
            )
            for ln in meta["lines"]
        ),
        true_counts=meta["true_counts"],
    )
