"""Polygon zones: enter and exit events, occupancy now, dwell time.

Per zone and per track (keyed by track id and class), with the anchor point of
`vision_core.track.anchors`:

- a track ENTERS when its anchor is seen inside the polygon `min_frames_on_side` frames in
  a row, and EXITS when seen outside as many frames in a row; a box that flickers across
  the border for fewer frames changes nothing. Both are stamped with the first frame of
  the run, so dwell time (exit - enter) is not skewed by the wait.
- a track inside that is no longer seen exits when the counter forgets it
  (`forget_frames` after it was last seen, i.e. once the tracker has given it up), stamped
  with the last time it was seen inside: occupancy never holds objects that left unseen
  (supervision issue 1855).
- only confirmed tracks enter; a tentative one inside enters once it is confirmed.

Occupancy is the number of tracks inside now, per zone and class.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from vision_core.track.anchors import Anchor
from vision_core.track.regions import ZoneRegion
from vision_core.track.slots import Forgotten, RegionCounter, SeenTracks, TrackSlots

__all__ = ["ZoneAction", "ZoneCounter", "ZoneTransition", "points_in_polygon"]

ZoneAction = Literal["enter", "exit"]


@dataclass(frozen=True, slots=True)
class ZoneTransition:
    """One track entering or leaving one zone."""

    zone: str
    action: ZoneAction
    track_id: int
    class_id: int
    class_name: str
    frame_index: int
    ts: float  # Unix seconds
    dwell_sec: float  # exit: time inside; enter: 0
    occupancy: int  # tracks in the zone after this event
    lost: bool = False  # exit: the track was not seen any more (not seen walking out)


def points_in_polygon(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """(N,) bool: which of (N, 2) points lie inside a (V, 2) polygon (even-odd rule)."""
    return _inside(points, _edges(polygon))


def _edges(polygon: np.ndarray) -> tuple[np.ndarray, ...]:
    """A polygon's edges as (1, V) rows: x1, y1, x2, y2 and the slope dx/dy (0 if flat)."""
    x1, y1 = polygon[:, 0], polygon[:, 1]
    x2, y2 = np.roll(x1, -1), np.roll(y1, -1)
    dy = y2 - y1
    slope = np.divide(x2 - x1, dy, out=np.zeros_like(dy), where=dy != 0)
    return x1[None], y1[None], y2[None], slope[None]


def _inside(points: np.ndarray, edges: tuple[np.ndarray, ...]) -> np.ndarray:
    x1, y1, y2, slope = edges
    x, y = points[:, 0:1], points[:, 1:2]  # (N, 1)
    straddles = (y1 > y) != (y2 > y)
    hits = straddles & (x < x1 + (y - y1) * slope)
    return (hits.sum(1) % 2) == 1


class ZoneCounter(RegionCounter[ZoneTransition]):
    """Zone events, occupancy and dwell for named polygon zones."""

    def __init__(
        self,
        zones: Sequence[ZoneRegion],
        *,
        min_frames_on_side: int = 3,
        forget_frames: int = 31,
        anchor: Anchor = "center",
        slots: TrackSlots | None = None,
    ) -> None:
        self.zones = list(zones)
        # per (track row, zone): ints (inside 0/1, run length off it, first frame of the
        # run, last frame seen inside) and floats (time of the run's start, of entering,
        # last seen inside)
        super().__init__(
            len(self.zones),
            (4, 3),
            min_frames_on_side=min_frames_on_side,
            forget_frames=forget_frames,
            anchor=anchor,
            slots=slots,
        )
        self._edges = [_edges(np.array(z.polygon, np.float64)) for z in self.zones]
        self._names: dict[int, str] = {}
        self.occupancy_by_class: dict[str, dict[str, int]] = {z.name: {} for z in self.zones}
        self.entered: dict[tuple[str, str], int] = {}  # (zone, class) -> enter events

    def occupancy(self) -> dict[str, int]:
        """Tracks inside each zone now."""
        return {z: sum(by.values()) for z, by in self.occupancy_by_class.items()}

    def _occupy(self, zone: str, cls: str, delta: int) -> int:
        by = self.occupancy_by_class[zone]
        by[cls] = by.get(cls, 0) + delta
        if by[cls] <= 0:
            del by[cls]
        return sum(by.values())

    def step(self, seen: SeenTracks, ts: float) -> list[ZoneTransition]:
        """One frame's tracks (see `RegionCounter.step`); returns the zone events it
        completes: first the lost exits of the tracks the slots forgot on it."""
        names = seen.names
        self._names.update(names)
        out = self._forget(seen.gone)
        if not len(seen.ids) or not self.zones:
            return out
        frame = seen.frame
        ids, cls, pts, confirmed = seen.ids, seen.class_ids, seen.points, seen.confirmed
        obs = np.empty((len(ids), len(self.zones)), bool)
        for z, region in enumerate(self.zones):
            obs[:, z] = _inside(pts, self._edges[z])
            if region.classes:
                obs[:, z] &= np.array(
                    [names.get(c, str(c)) in region.classes for c in cls.tolist()], bool
                )

        ints, floats = self._state(seen)
        inside, rn, cfr, last_frame = (ints[..., i] for i in range(4))
        cts, enter_ts, last_ts = (floats[..., i] for i in range(3))
        flip = obs != (inside == 1)
        start = flip & (rn == 0)
        cts[start] = ts
        cfr[start] = frame
        rn[flip] += 1
        rn[~flip] = 0
        ready = flip & (rn >= self.min_frames) & confirmed[:, None]
        if ready.any():
            ti, zi = np.nonzero(ready)
            for t, z in zip(ti.tolist(), zi.tolist(), strict=True):
                cid = int(cls[t])
                name = names.get(cid, str(cid))
                zone = self.zones[z].name
                entering = bool(obs[t, z])
                if entering:
                    enter_ts[t, z] = cts[t, z]
                    occ = self._occupy(zone, name, +1)
                    key = (zone, name)
                    self.entered[key] = self.entered.get(key, 0) + 1
                    dwell = 0.0
                else:
                    occ = self._occupy(zone, name, -1)
                    dwell = max(0.0, float(cts[t, z] - enter_ts[t, z]))
                out.append(
                    ZoneTransition(
                        zone=zone,
                        action="enter" if entering else "exit",
                        track_id=int(ids[t]),
                        class_id=cid,
                        class_name=name,
                        frame_index=int(cfr[t, z]),
                        ts=float(cts[t, z]),
                        dwell_sec=dwell,
                        occupancy=occ,
                    )
                )
            inside[ready] = obs[ready]
            rn[ready] = 0
        now_in = (inside == 1) & obs
        last_ts[now_in] = ts
        last_frame[now_in] = frame
        self._keep(seen, ints, floats)
        return out

    def _forget(self, gone: Forgotten) -> list[ZoneTransition]:
        """The tracks of these (row, key) pairs, forgotten by the slots (not seen for
        forget_frames), leave every zone they were in."""
        out: list[ZoneTransition] = []
        for row, (tid, cid) in gone:
            if row >= self._ints.shape[0]:
                continue
            for z in np.flatnonzero(self._ints[row, :, 0]).tolist():
                zone = self.zones[z].name
                name = self._names.get(cid, str(cid))
                occ = self._occupy(zone, name, -1)
                last_ts, enter_ts = float(self._floats[row, z, 2]), float(self._floats[row, z, 1])
                out.append(
                    ZoneTransition(
                        zone=zone,
                        action="exit",
                        track_id=tid,
                        class_id=cid,
                        class_name=name,
                        frame_index=int(self._ints[row, z, 3]),
                        ts=last_ts,
                        dwell_sec=max(0.0, last_ts - enter_ts),
                        occupancy=occ,
                        lost=True,
                    )
                )
            self._ints[row] = 0
        return out

    def close(self) -> list[ZoneTransition]:
        """The source ended: every object still inside a zone leaves it (a lost exit at the
        time it was last seen inside), so occupancy kept from the events returns to 0."""
        return self._forget(self.slots.sweep(2**62))

    def dwell_now(self, ts: float) -> list[tuple[str, int, str, float]]:
        """(zone, track id, class, seconds inside so far) of every occupant."""
        out = []
        for z, zone in enumerate(self.zones):
            for row in np.flatnonzero(self._ints[:, z, 0]).tolist():
                key = self.slots.keys[row]
                if key is None:
                    continue
                tid, cid = key
                out.append(
                    (
                        zone.name,
                        tid,
                        self._names.get(cid, str(cid)),
                        max(0.0, ts - float(self._floats[row, z, 1])),
                    )
                )
        return out
