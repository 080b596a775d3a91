"""Per-track state rows for the counters, keyed by (track id, class id).

A counter keeps its per-track state in NumPy arrays, one row per track, so a frame's
update is a few array operations whatever the number of tracks. `TrackSlots` hands out
the rows and takes back those of tracks gone for a while; `take_tracks` looks a frame's
tracks up in them (once per frame, for all the counters that share the slots);
`RegionCounter` is what the line and zone counters build on them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, TypeVar

import numpy as np

from vision_core.track.anchors import Anchor, anchor_points

if TYPE_CHECKING:
    from vision_core.track.tracker import TrackBatch

__all__ = ["Forgotten", "RegionCounter", "SeenTracks", "TrackSlots", "grown", "take_tracks"]

EventT = TypeVar("EventT")  # what a counter reports: a crossing, a zone transition
Forgotten = list[tuple[int, tuple[int, int]]]  # (row, (track id, class id)) the sweep freed


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
        keys = list(zip(track_ids.tolist(), class_ids.tolist(), strict=True))
        row_of = self._row
        found = [row_of.get(key, -1) for key in keys]
        out = np.array(found, np.int64)
        fresh = out < 0
        if fresh.any():
            for i in fresh.nonzero()[0].tolist():
                r = self._take()
                row_of[keys[i]] = r
                self.keys[r] = keys[i]
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

    def sweep(self, frame: int) -> Forgotten:
        """Forget keys unseen for forget_frames; returns their (row, key) pairs."""
        stale = ((self.last_seen >= 0) & (frame - self.last_seen > self.forget_frames)).nonzero()[0]
        gone: Forgotten = []
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
    """One frame as the counters take it: the tracks that have an id, with their anchor
    points and state rows (`fresh`: rows just handed out, whose state is to be zeroed), and
    the keys the slots forgot on this frame (`gone`: their rows may be handed out again
    on this very frame, so a counter reads what it needs of them first). `take_tracks`
    makes it once per frame for every counter that shares the slots."""

    frame: int
    gone: Forgotten
    names: Mapping[int, str]  # class names by id
    ids: np.ndarray  # (N,) track ids
    class_ids: np.ndarray  # (N,)
    points: np.ndarray  # (N, 2) anchor points
    confirmed: np.ndarray  # (N,) bool
    rows: np.ndarray  # (N,) state rows
    fresh: np.ndarray  # (N,) bool


def take_tracks(batch: TrackBatch, slots: TrackSlots, anchor: Anchor) -> SeenTracks:
    """Sweep `slots` for this frame, then look up the tracks of `batch` that have an id (an
    id < 0 means "no id" in some trackers: no state)."""
    gone = slots.sweep(batch.frame_index)
    ok = batch.track_ids >= 0
    everyone = bool(ok.all())
    ids = batch.track_ids if everyone else batch.track_ids[ok]
    cls = batch.class_ids if everyone else batch.class_ids[ok]
    rows, fresh = slots.rows(ids, cls, batch.frame_index)
    return SeenTracks(
        batch.frame_index,
        gone,
        batch.names,
        ids,
        cls,
        anchor_points(batch.xyxy if everyone else batch.xyxy[ok], anchor),
        batch.confirmed if everyone else batch.confirmed[ok],
        rows,
        fresh,
    )


class RegionCounter(Generic[EventT]):
    """What the line and zone counters share: per-track rows (`slots`) of state per
    (track, region), one int array and one float array, and taking a frame's tracks.

    Standalone, a counter takes a frame's tracks itself (`update`). Counters over the same
    tracks may share one `TrackSlots` (same anchor and forget_frames; the slots' own
    forget_frames holds): then whoever holds the slots takes each frame's tracks once and
    hands them to each counter's `step` (what `TrackCounter` does for its lines and zones).
    """

    def __init__(
        self,
        regions: int,
        state: tuple[int, int],
        *,
        min_frames_on_side: int,
        forget_frames: int,
        anchor: Anchor,
        slots: TrackSlots | None = None,
    ) -> None:
        self.min_frames = max(1, int(min_frames_on_side))
        self.anchor: Anchor = anchor
        self.slots = slots if slots is not None else TrackSlots(forget_frames)
        self._ints = np.zeros((0, regions, state[0]), np.int64)
        self._floats = np.zeros((0, regions, state[1]))

    def update(self, batch: TrackBatch, ts: float) -> list[EventT]:
        """Take the tracks observed on one frame; returns the events completed on it."""
        return self.step(take_tracks(batch, self.slots, self.anchor), ts)

    def step(self, seen: SeenTracks, ts: float) -> list[EventT]:
        """One frame (`take_tracks` over this counter's slots), at Unix time `ts`."""
        raise NotImplementedError

    def _state(self, seen: SeenTracks) -> tuple[np.ndarray, np.ndarray]:
        """Copies of the state of `seen`'s rows (a fresh row's zeroed): ints, floats."""
        cap = self.slots.capacity
        if self._ints.shape[0] < cap:
            self._ints = grown(self._ints, cap, 0)
            self._floats = grown(self._floats, cap, 0.0)
        if seen.fresh.any():
            self._ints[seen.rows[seen.fresh]] = 0
        return self._ints[seen.rows], self._floats[seen.rows]

    def _keep(self, seen: SeenTracks, ints: np.ndarray, floats: np.ndarray) -> None:
        """Store the state of `seen`'s rows (`_state`'s arrays, updated)."""
        self._ints[seen.rows] = ints
        self._floats[seen.rows] = floats
