"""Counting line crossings of tracks, immune to the traps users of supervision hit.

The rule, per line and per track (keyed by track id AND class):

- A track's side of a line is the sign of its anchor point against the line (a point
  exactly on it says nothing). A track has a *settled* side once its anchor was seen
  `min_frames_on_side` frames in a row on one side.
- A crossing happens when the anchor is then seen `min_frames_on_side` frames in a row on
  the other side, AND the anchor's path from its last position on the old side to its
  first position on the new side passes through the line SEGMENT (walking past the end of
  a finite line is no crossing). The new side becomes the settled side; the crossing is
  stamped with the time of the first frame on the new side.
- Only confirmed tracks count. A tentative track's sides are remembered (it has an id of
  its own) and a crossing it makes counts once it is confirmed, if it still holds.

What this rules out, each a test in tests/test_track_lines.py:

- unconfirmed tracks sharing one id (supervision issue 2578): they count nothing;
- a box flickering to the other side for fewer than `min_frames_on_side` frames (PR 2600,
  PR 1540): nothing, in either direction, however often it flickers;
- an id reused for another class (PR 1868): state is keyed by (id, class), no mixing;
- an object that comes up to the line and turns back: never settled on the far side;
- a line near the frame edge (issue 1838): one anchor point, not all four box corners;
- an object that crosses, lingers on the line and jitters: one crossing, since every
  jitter back is shorter than `min_frames_on_side`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from vision_core.track.anchors import Anchor
from vision_core.track.regions import LineRegion
from vision_core.track.slots import RegionCounter, SeenTracks, TrackSlots

__all__ = ["Direction", "LineCounter", "LineCrossing"]

Direction = Literal["in", "out"]


@dataclass(frozen=True, slots=True)
class LineCrossing:
    """One track crossing one line."""

    line: str
    direction: Direction
    track_id: int
    class_id: int
    class_name: str
    frame_index: int  # the first frame on the new side
    ts: float  # Unix seconds of that frame


class LineCounter(RegionCounter[LineCrossing]):
    """Counts crossings of named lines by tracks, per line, class and direction."""

    def __init__(
        self,
        lines: Sequence[LineRegion],
        *,
        min_frames_on_side: int = 3,
        forget_frames: int = 31,
        anchor: Anchor = "center",
        slots: TrackSlots | None = None,
    ) -> None:
        self.lines = list(lines)
        n = len(self.lines)
        # per (track row, line): ints (settled side -1/+1/0 = not yet known, side of the
        # current run off it, run length, first frame of the run) and floats (last anchor
        # on the settled side x, y; first anchor of the run x, y; time of the run's start)
        super().__init__(
            n,
            (4, 5),
            min_frames_on_side=min_frames_on_side,
            forget_frames=forget_frames,
            anchor=anchor,
            slots=slots,
        )
        self._start = np.array([ln.start for ln in self.lines], np.float64).reshape(n, 2)
        self._dir = np.array(
            [(ln.end[0] - ln.start[0], ln.end[1] - ln.start[1]) for ln in self.lines], np.float64
        ).reshape(n, 2)
        self._in_sign = np.array([ln.in_sign for ln in self.lines], np.int64)
        self.counts: dict[tuple[str, str, Direction], int] = {}

    def __len__(self) -> int:
        return len(self.lines)

    def step(self, seen: SeenTracks, ts: float) -> list[LineCrossing]:
        """One frame's tracks (see `RegionCounter.step`); returns the crossings completed
        on it. A forgotten track's rows need nothing: a fresh row starts zeroed."""
        if not len(seen.ids) or not self.lines:
            return []
        frame = seen.frame
        ids, cls, pts, confirmed = seen.ids, seen.class_ids, seen.points, seen.confirmed
        rel = pts[:, None, :] - self._start[None]  # (N, L, 2)
        cross = self._dir[None, :, 0] * rel[..., 1] - self._dir[None, :, 1] * rel[..., 0]
        side = np.sign(cross).astype(np.int64)
        here = np.empty_like(rel)  # each track's anchor, once per line
        here[...] = pts[:, None, :]

        ints, floats = self._state(seen)
        st, cd, rn, cfr = ints[..., 0], ints[..., 1], ints[..., 2], ints[..., 3]
        lp, cp, cts = floats[..., 0:2], floats[..., 2:4], floats[..., 4]
        off_line = side != 0
        same = off_line & (side == st)
        lp[same] = here[same]
        cd[same] = 0
        rn[same] = 0
        other = off_line & (side != st)
        start = other & (cd != side)
        cd[start] = side[start]
        rn[start] = 0
        cp[start] = here[start]
        cts[start] = ts
        cfr[start] = frame
        rn[other] += 1
        ready = other & (rn >= self.min_frames)
        first = ready & (st == 0)  # the first settled side: no crossing
        crossed = ready & (st != 0) & confirmed[:, None]
        done = first | crossed
        out: list[LineCrossing] = []
        if crossed.any():
            ti, li = np.nonzero(crossed)
            through = self._through(lp[ti, li], cp[ti, li], li)
            for t, ln, hit in zip(ti.tolist(), li.tolist(), through.tolist(), strict=True):
                if not hit:
                    continue
                line = self.lines[ln]
                cid = int(cls[t])
                name = seen.names.get(cid, str(cid))
                if line.classes and name not in line.classes:
                    continue
                direction: Direction = "in" if side[t, ln] == self._in_sign[ln] else "out"
                out.append(
                    LineCrossing(
                        line=line.name,
                        direction=direction,
                        track_id=int(ids[t]),
                        class_id=cid,
                        class_name=name,
                        frame_index=int(cfr[t, ln]),
                        ts=float(cts[t, ln]),
                    )
                )
                key = (line.name, name, direction)
                self.counts[key] = self.counts.get(key, 0) + 1
        st[done] = side[done]
        lp[done] = here[done]
        cd[done] = 0
        rn[done] = 0
        self._keep(seen, ints, floats)
        return out

    def _through(self, p: np.ndarray, q: np.ndarray, li: np.ndarray) -> np.ndarray:
        """Does the path p -> q (on opposite sides of line li) pass through its segment?"""
        a, d = self._start[li], self._dir[li]
        dp = d[:, 0] * (p[:, 1] - a[:, 1]) - d[:, 1] * (p[:, 0] - a[:, 0])
        dq = d[:, 0] * (q[:, 1] - a[:, 1]) - d[:, 1] * (q[:, 0] - a[:, 0])
        denom = dp - dq
        alpha = np.divide(dp, denom, out=np.zeros_like(dp), where=denom != 0)
        x = p + alpha[:, None] * (q - p)
        t = ((x - a) * d).sum(1) / (d * d).sum(1)
        return (t >= 0.0) & (t <= 1.0)

    def counts_by_line(self) -> dict[str, dict[str, dict[Direction, int]]]:
        """{line: {class: {"in": n, "out": n}}} for every line (classes seen so far)."""
        out: dict[str, dict[str, dict[Direction, int]]] = {ln.name: {} for ln in self.lines}
        for (line, cls, direction), n in sorted(self.counts.items()):
            out[line].setdefault(cls, {"in": 0, "out": 0})[direction] = n
        return out
