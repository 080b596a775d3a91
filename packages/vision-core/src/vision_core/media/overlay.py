"""Annotated frames of a tracked run: boxes with track ids, short trails, the counting lines
and zones, and live counts, so a user can see where a line sits before trusting its counts.

`TrackOverlay` keeps each track's last `trail` anchor points (tracks not seen for
`forget_frames` frames are dropped: memory stays bounded on an endless stream) and draws on
a copy of the frame; the input image is never modified.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import cv2
import numpy as np

from vision_core.media.preview import class_colour, draw_detections
from vision_core.types import Detection

if TYPE_CHECKING:
    from vision_core.track.regions import LineRegion, ZoneRegion
    from vision_core.track.tracker import TrackBatch

__all__ = ["TrackOverlay"]

_LINE = (0, 220, 255)  # BGR: amber lines
_ZONE = (255, 160, 0)  # BGR: blue zones
_TEXT = (255, 255, 255)


def _pt(p: tuple[float, float]) -> tuple[int, int]:
    return round(p[0]), round(p[1])


def _label(img: np.ndarray, text: str, org: tuple[int, int], colour: tuple[int, int, int]) -> None:
    scale = max(0.35, min(img.shape[:2]) / 900)
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    x = min(max(0, org[0]), max(0, img.shape[1] - tw - 2))
    y = min(max(th + base, org[1]), img.shape[0] - 1)
    cv2.rectangle(img, (x, y - th - base), (x + tw + 2, y), colour, -1)
    cv2.putText(
        img, text, (x + 1, y - base), cv2.FONT_HERSHEY_SIMPLEX, scale, _TEXT, 1, cv2.LINE_AA
    )


class TrackOverlay:
    """Draws a tracked frame (see the module docstring)."""

    def __init__(
        self,
        lines: Sequence[LineRegion] = (),
        zones: Sequence[ZoneRegion] = (),
        *,
        trail: int = 20,
        forget_frames: int = 30,
    ) -> None:
        self.lines = list(lines)
        self.zones = list(zones)
        self.trail = trail
        self.forget_frames = forget_frames
        self._trails: dict[int, deque[tuple[int, int]]] = {}
        self._last_seen: dict[int, int] = {}

    def _update_trails(self, tracks: TrackBatch) -> None:
        frame = tracks.frame_index
        seen = tracks.confirmed & (tracks.frames_lost == 0)
        for tid, box in zip(
            tracks.track_ids[seen].tolist(), tracks.xyxy[seen].tolist(), strict=True
        ):
            trail = self._trails.setdefault(tid, deque(maxlen=self.trail))
            trail.append(_pt(((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)))
            self._last_seen[tid] = frame
        for tid in [t for t, f in self._last_seen.items() if frame - f > self.forget_frames]:
            del self._last_seen[tid]
            self._trails.pop(tid, None)

    def draw(
        self,
        image: np.ndarray,
        detections: Sequence[Detection],
        tracks: TrackBatch | None = None,
        *,
        line_counts: Mapping[tuple[str, str, str], int] | None = None,
        occupancy: Mapping[str, int] | None = None,
    ) -> np.ndarray:
        """An annotated copy: zones, lines with their in/out counts, then the tracked boxes
        (id, class, trail) or, without tracking, the detections."""
        out = image.copy()
        lw = max(1, round(sum(out.shape[:2]) / 2 * 0.003))
        for zone in self.zones:
            pts = np.array([_pt(p) for p in zone.polygon], np.int32)
            cv2.polylines(out, [pts], True, _ZONE, lw, cv2.LINE_AA)
            n = (occupancy or {}).get(zone.name, 0)
            _label(out, f"{zone.name}: {n} inside", _pt(zone.polygon[0]), _ZONE)
        totals: dict[tuple[str, str], int] = {}
        for (name, _cls, direction), n in (line_counts or {}).items():
            totals[(name, direction)] = totals.get((name, direction), 0) + n
        for line in self.lines:
            cv2.line(out, _pt(line.start), _pt(line.end), _LINE, lw + 1, cv2.LINE_AA)
            text = (
                f"{line.name}: in {totals.get((line.name, 'in'), 0)} "
                f"out {totals.get((line.name, 'out'), 0)}"
            )
            _label(out, text, _pt(line.start), _LINE)
        if tracks is None:
            return draw_detections(out, detections, thickness=lw)
        self._update_trails(tracks)
        shown = tracks.confirmed & (tracks.frames_lost == 0)
        for tid, cid, box in zip(
            tracks.track_ids[shown].tolist(),
            tracks.class_ids[shown].tolist(),
            tracks.xyxy[shown].tolist(),
            strict=True,
        ):
            colour = class_colour(cid)
            x1, y1, x2, y2 = (round(v) for v in box)
            cv2.rectangle(out, (x1, y1), (x2, y2), colour, lw, cv2.LINE_AA)
            trail = self._trails.get(tid)
            if trail and len(trail) > 1:
                cv2.polylines(out, [np.array(trail, np.int32)], False, colour, lw, cv2.LINE_AA)
            _label(out, f"#{tid} {tracks.names.get(cid, str(cid))}", (x1, y1), colour)
        return out
