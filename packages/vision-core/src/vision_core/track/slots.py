"""Per-track state rows for the counters, keyed by (track id, class id).

A counter keeps its per-track state in NumPy arrays, one row per track, so a frame's
update is a few array operations whatever the number of tracks. `TrackSlots` hands out
the rows and takes back those of tracks gone for a while; `RegionCounter` is what the
line and zone counters build on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from vision_core.track.anchors import Anchor, anchor_points

if TYPE_CHECKING:
    from vision_core.track.tracker import TrackBatch

__all__ = ["RegionCounter", "SeenTracks", "TrackSlots", "grown"]


def grown(arr: np.ndarray, rows: int, fill: float | int | bool) -> np.ndarray:
    """`arr` with at least `rows` rows; new rows hold `fill`."""
    if arr.shape[0] >= rows:
        return arr
    extra = np.full((rows - arr.shape[0], *arr.shape[1:]), fill, dtype=arr.dtype)
    return np.concatenate([arr, extra])


class TrackSlots:
    """Rows of per-track state, keyed by (track id, class id), forgotten when unseen.

    A counter keeps its state in arrays indexed by the row `rows()` gives each key; a key
    not seen for `forget_frames` frames gives its row back (`sweep`), so the state of an
    endless stream stays as large as the number of objects in view, not the number seen.
    Keying by class as well as id means a tracker that reuses an id for an object of
    another class (supervision PR 1868) starts a fresh row instead of mixing the two.
    """

    def __init__(self, forget_frames: int) -> None:
        self.forget_frames = max(1, int(forget_frames))
        self._row: dict[tuple[int, int], int] = {}
        self._free: list[int] = []
        self.capacity = 0
        self.last_seen = np.empty(0, np.int64)
        self.keys: list[tuple[int, int] | None] = []

    def __len__(self) -> int:
        return len(self._row)

    def rows(
        self, track_ids: np.ndarray, class_ids: np.ndarray, frame: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Rows for these keys (new keys get fresh rows) and a mask of the new ones."""
        out = np.empty(len(track_ids), np.int64)
        fresh = np.zeros(len(track_ids), bool)
        row_of = self._row
        for i, key in enumerate(zip(track_ids.tolist(), class_ids.tolist(), strict=True)):
            r = row_of.get(key)
            if r is None:
                r = self._take()
                row_of[key] = r
                self.keys[r] = key
                fresh[i] = True
            out[i] = r
        self.last_seen[out] = frame
        return out, fresh

    def _take(self) -> int:
        if not self._free:
            grow = max(16, self.capacity)
            self._free.extend(range(self.capacity + grow - 1, self.capacity - 1, -1))
            self.capacity += grow
            self.last_seen = np.concatenate([self.last_seen, np.full(grow, -1, np.int64)])
            self.keys.extend([None] * grow)
        return self._free.pop()

    def sweep(self, frame: int) -> list[tuple[int, tuple[int, int]]]:
        """Forget keys unseen for forget_frames; returns their (row, key) pairs."""
        stale = np.flatnonzero(
            (self.last_seen >= 0) & (frame - self.last_seen > self.forget_frames)
        )
        gone: list[tuple[int, tuple[int, int]]] = []
        for r in stale.tolist():
            key = self.keys[r]
            assert key is not None
            del self._row[key]
            self.keys[r] = None
            self._free.append(r)
            gone.append((r, key))
        self.last_seen[stale] = -1
        return gone


@dataclass(frozen=True, slots=True)
class SeenTracks:
    """The tracks of one frame that have an id, as a counter takes them: their anchor
    points, state rows, and a copy of those rows' state (`RegionCounter._keep` stores it)."""

    ids: np.ndarray  # (N,) track ids
    class_ids: np.ndarray  # (N,)
    points: np.ndarray  # (N, 2) anchor points
    confirmed: np.ndarray  # (N,) bool
    rows: np.ndarray  # (N,) state rows
    ints: np.ndarray  # (N, regions, ints per region)
    floats: np.ndarray  # (N, regions, floats per region)


class RegionCounter:
    """What the line and zone counters share: per-track rows (`slots`) of state per
    (track, region), one int array and one float array, and taking a frame's tracks."""

    def __init__(
        self,
        regions: int,
        state: tuple[int, int],
        *,
        min_frames_on_side: int,
        forget_frames: int,
        anchor: Anchor,
    ) -> None:
        self.min_frames = max(1, int(min_frames_on_side))
        self.anchor: Anchor = anchor
        self.slots = TrackSlots(forget_frames)
        self._ints = np.zeros((0, regions, state[0]), np.int64)
        self._floats = np.zeros((0, regions, state[1]))

    def _ensure(self) -> None:
        cap = self.slots.capacity
        if self._ints.shape[0] < cap:
            self._ints = grown(self._ints, cap, 0)
            self._floats = grown(self._floats, cap, 0.0)

    def _take_tracks(self, batch: TrackBatch) -> SeenTracks | None:
        """The tracks of `batch` that have an id (an id < 0 means "no id" in some
        trackers: no state), a new track's state zeroed; None when there are none."""
        ok = batch.track_ids >= 0
        ids, cls = batch.track_ids[ok], batch.class_ids[ok]
        if not len(ids):
            return None
        pts = anchor_points(batch.xyxy[ok], self.anchor)
        rows, fresh = self.slots.rows(ids, cls, batch.frame_index)
        self._ensure()
        if fresh.any():
            self._ints[rows[fresh]] = 0
        confirmed = batch.confirmed[ok]
        return SeenTracks(ids, cls, pts, confirmed, rows, self._ints[rows], self._floats[rows])

    def _keep(self, seen: SeenTracks) -> None:
        """Store the state of `seen`'s rows (its `ints` and `floats`, updated)."""
        self._ints[seen.rows] = seen.ints
        self._floats[seen.rows] = seen.floats
