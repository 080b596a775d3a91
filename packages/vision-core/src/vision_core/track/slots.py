"""Per-track state rows for the counters, keyed by (track id, class id).

A counter keeps its per-track state in NumPy arrays, one row per track, so a frame's
update is a few array operations whatever the number of tracks. `TrackSlots` hands out
the rows and takes back those of tracks gone for a while.
"""

from __future__ import annotations

import numpy as np

__all__ = ["TrackSlots", "grown"]


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
