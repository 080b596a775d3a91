"""MOTChallenge text files: ground truth and tracker output, read and written in one place.

One row per object per frame, comma-separated (MOT16/17 ground-truth layout):

    frame, id, left, top, width, height, conf, class, visibility

- frame: 1-based frame number (MOTChallenge's convention; frame index 0 is frame 1);
- left, top, width, height: the box in pixels;
- conf: ground truth: 1 = counts, 0 = ignore; tracker output: the score;
- class: the class id of the dataset (0-based, as `class_map`), -1 when unknown;
- visibility: 0..1, the fraction of the object not hidden (ground truth), else -1.

The reader also takes the 6-column and 10-column (`..., conf, x, y, z`) submission form,
class then -1. A bad line is a `DatasetError` naming the file and line number.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from vision_core.errors import DatasetError
from vision_core.fsutil import atomic_write_text
from vision_core.track.tracker import TrackBatch

if TYPE_CHECKING:
    from vision_core.config.schema import TrackSection

__all__ = ["MotData", "MotFileWriter", "MotWriter", "TrackFiller", "read_mot", "write_mot"]

TrackRow = tuple[int, int, list[float], float, int]  # frame index, id, xyxy, score, class id


@dataclass(frozen=True, slots=True)
class MotData:
    """MOT rows as columns; boxes as xyxy pixels; frames 1-based."""

    frames: np.ndarray  # (N,) int64
    ids: np.ndarray  # (N,) int64
    xyxy: np.ndarray  # (N, 4) float64
    conf: np.ndarray  # (N,) float64
    class_ids: np.ndarray  # (N,) int64
    visibility: np.ndarray  # (N,) float64

    def __len__(self) -> int:
        return len(self.frames)

    @classmethod
    def empty(cls) -> MotData:
        return cls(
            np.empty(0, np.int64),
            np.empty(0, np.int64),
            np.empty((0, 4)),
            np.empty(0),
            np.empty(0, np.int64),
            np.empty(0),
        )

    def by_frame(self) -> dict[int, np.ndarray]:
        """frame -> row indices of that frame."""
        order = np.argsort(self.frames, kind="stable")
        frames = self.frames[order]
        cuts = np.flatnonzero(np.diff(frames)) + 1
        return {
            int(frames[chunk[0]]): order[chunk]
            for chunk in np.split(np.arange(len(frames)), cuts)
            if len(chunk)
        }

    def select(self, mask: np.ndarray) -> MotData:
        return MotData(
            self.frames[mask],
            self.ids[mask],
            self.xyxy[mask],
            self.conf[mask],
            self.class_ids[mask],
            self.visibility[mask],
        )


class TrackFiller:
    """Completes a live run's confirmed tracks for the tracks file, online, in bounded memory.

    The live tracks (what counters see) hold a track from its confirmation on, and only on
    the frames it was matched. The tracks file is for reviewing and scoring a run, so it
    gets what is known a few frames later:

    - a track's tentative frames, written when it is confirmed (a track that is dropped
      unconfirmed writes nothing);
    - when a lost track is found again after at most `max_gap` missed frames, a box on
      each missed frame, linearly interpolated between the last box before and the first
      after (score 0: no detection), as ByteTrack's published results do offline.

    Held: the rows of tentative tracks (at most min_hits each) and the last row of each
    confirmed track seen within `max_gap` frames, so memory follows the live tracks.
    Rows come back in the order they become known, not in frame order.
    """

    def __init__(self, max_gap: int) -> None:
        self.max_gap = max_gap
        self._pending: dict[int, list[TrackRow]] = {}
        self._last: dict[int, TrackRow] = {}

    @classmethod
    def from_config(cls, section: TrackSection) -> TrackFiller | None:
        """The tracks file's filler for `track.fill_gaps` (gaps up to `track.lost_frames`)."""
        return cls(section.lost_frames) if section.fill_gaps else None

    def rows(self, frame_index: int, tracks: TrackBatch) -> list[TrackRow]:
        """The rows this frame's tracks make known (filled ones first, each track's own
        after)."""
        out: list[TrackRow] = []
        tentative: dict[int, list[TrackRow]] = {}
        for tid, box, score, cid, confirmed in zip(
            tracks.track_ids.tolist(),
            tracks.xyxy.tolist(),
            tracks.scores.tolist(),
            tracks.class_ids.tolist(),
            tracks.confirmed.tolist(),
            strict=True,
        ):
            row = (frame_index, tid, box, score, cid)
            if not confirmed:
                tentative[tid] = [*self._pending.get(tid, ()), row]
                continue
            out.extend(self._pending.get(tid, ()))
            last = self._last.get(tid)
            if last is not None and 1 < frame_index - last[0] <= self.max_gap + 1:
                out.extend(_interpolate(last, row))
            out.append(row)
            self._last[tid] = row
        # a tentative track missing from this frame was dropped: its rows go with it
        self._pending = tentative
        oldest = frame_index - self.max_gap - 1
        if any(row[0] < oldest for row in self._last.values()):
            self._last = {t: row for t, row in self._last.items() if row[0] >= oldest}
        return out


def _interpolate(a: TrackRow, b: TrackRow) -> list[TrackRow]:
    """Rows on the frames strictly between a and b (same track), boxes on the line between."""
    gap = b[0] - a[0]
    box_a, box_b = np.asarray(a[2]), np.asarray(b[2])
    return [
        (a[0] + k, a[1], (box_a + (box_b - box_a) * (k / gap)).tolist(), 0.0, a[4])
        for k in range(1, gap)
    ]


@dataclass
class MotWriter:
    """Collects a tracked run frame by frame; `data()` gives the MotData. With a `filler`,
    the confirmed tracks are completed as the tracks file is (`TrackFiller`)."""

    rows: list[tuple[int, int, float, float, float, float, float, int, float]] = field(
        default_factory=list
    )
    filler: TrackFiller | None = None

    def add(self, frame_index: int, tracks: TrackBatch, *, confirmed_only: bool = True) -> None:
        """The tracks of one frame (frame_index 0-based; written as frame_index + 1)."""
        filler = self.filler if confirmed_only else None
        for f, tid, box, score, cid in _frame_rows(frame_index, tracks, filler, confirmed_only):
            self.add_row(f, tid, box, score, cid)

    def add_row(
        self,
        frame_index: int,
        track_id: int,
        xyxy: tuple[float, ...] | list[float],
        conf: float = 1.0,
        class_id: int = -1,
        visibility: float = -1.0,
    ) -> None:
        x1, y1, x2, y2 = (float(v) for v in xyxy)
        self.rows.append(
            (frame_index + 1, int(track_id), x1, y1, x2, y2, float(conf), int(class_id), visibility)
        )

    def data(self) -> MotData:
        if not self.rows:
            return MotData.empty()
        cols = list(zip(*self.rows, strict=True))
        return MotData(
            np.array(cols[0], np.int64),
            np.array(cols[1], np.int64),
            np.stack([np.array(cols[i], np.float64) for i in range(2, 6)], 1),
            np.array(cols[6], np.float64),
            np.array(cols[7], np.int64),
            np.array(cols[8], np.float64),
        )


def _frame_rows(
    frame_index: int, tracks: TrackBatch, filler: TrackFiller | None, confirmed_only: bool
) -> list[TrackRow]:
    """The rows one frame's tracks give: the filler's, or the tracks of the frame as they are."""
    if filler is not None:
        return filler.rows(frame_index, tracks)
    return [
        (frame_index, tid, box, score, cid)
        for tid, box, score, cid in _track_rows(tracks, confirmed_only=confirmed_only)
    ]


def _track_rows(
    tracks: TrackBatch, *, confirmed_only: bool
) -> Iterator[tuple[int, list[float], float, int]]:
    """(track id, xyxy, score, class id) of each track (the confirmed ones only, or all)."""
    keep = tracks.confirmed if confirmed_only else np.ones(len(tracks), bool)
    return zip(
        tracks.track_ids[keep].tolist(),
        tracks.xyxy[keep].tolist(),
        tracks.scores[keep].tolist(),
        tracks.class_ids[keep].tolist(),
        strict=True,
    )


def _rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: cannot read MOT file: {exc}") from None
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if line and not line.startswith("#"):
            yield n, [p.strip() for p in line.split(",")]


def read_mot(path: str | Path) -> MotData:
    """Read a MOT file (6, 7, 9 or 10 columns); DatasetError names the bad line."""
    p = Path(path)
    out = MotWriter()
    for n, parts in _rows(p):
        if len(parts) not in (6, 7, 9, 10):
            raise DatasetError(
                f"{p}:{n}: expected 6, 7, 9 or 10 comma-separated values "
                f"(frame,id,left,top,width,height,conf,class,visibility), got {len(parts)}"
            )
        try:
            frame, tid = int(parts[0]), int(float(parts[1]))
            left, top, w, h = (float(v) for v in parts[2:6])
            conf = float(parts[6]) if len(parts) > 6 else 1.0
            cls = int(float(parts[7])) if len(parts) == 9 else -1
            vis = float(parts[8]) if len(parts) == 9 else -1.0
        except ValueError as exc:
            raise DatasetError(f"{p}:{n}: not a number ({exc})") from None
        if frame < 1:
            raise DatasetError(f"{p}:{n}: frame numbers start at 1, got {frame}")
        if not all(math.isfinite(v) for v in (left, top, w, h, conf)) or w < 0 or h < 0:
            raise DatasetError(
                f"{p}:{n}: expected a finite box with width and height >= 0, got "
                f"{left:g},{top:g},{w:g},{h:g}"
            )
        out.add_row(frame - 1, tid, (left, top, left + w, top + h), conf, cls, vis)
    return out.data()


def _num(v: float) -> str:
    """Pixels to 1/1000 px, without trailing zeros."""
    text = f"{v:.3f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def _row(frame: int, tid: int, xyxy: list[float], conf: float, cls: int, vis: float) -> str:
    x1, y1, x2, y2 = xyxy
    return ",".join(
        [
            str(frame),
            str(tid),
            _num(x1),
            _num(y1),
            _num(x2 - x1),
            _num(y2 - y1),
            f"{conf:.4g}",
            str(cls),
            f"{vis:.4g}",
        ]
    )


def write_mot(path: str | Path, data: MotData) -> Path:
    """Write MotData as a 9-column MOT file (atomically), rows sorted by frame then id."""
    order = np.lexsort((data.ids, data.frames))
    lines = [
        _row(
            int(data.frames[i]),
            int(data.ids[i]),
            data.xyxy[i].tolist(),
            float(data.conf[i]),
            int(data.class_ids[i]),
            float(data.visibility[i]),
        )
        for i in order.tolist()
    ]
    return atomic_write_text(path, "".join(f"{line}\n" for line in lines))


class MotFileWriter:
    """Appends a live run's confirmed tracks to a MOT file frame by frame (bounded memory,
    for endless sources; a crash leaves every whole frame written before it). With a
    `filler` (track.fill_gaps), tracks are completed as `TrackFiller` says; rows are then
    not in frame order (MOT readers sort them)."""

    def __init__(self, path: str | Path, filler: TrackFiller | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path, "w", encoding="utf-8")  # noqa: SIM115 - held for the run
        self.filler = filler
        self.rows = 0

    def add(self, frame_index: int, tracks: TrackBatch) -> None:
        """The confirmed tracks of one frame (frame_index 0-based; written 1-based)."""
        rows = _frame_rows(frame_index, tracks, self.filler, True)
        lines = [_row(f + 1, tid, box, score, cid, -1.0) for f, tid, box, score, cid in rows]
        if lines:
            self._fh.write("".join(f"{line}\n" for line in lines))
            self._fh.flush()
            self.rows += len(lines)

    def close(self) -> None:
        self._fh.close()
