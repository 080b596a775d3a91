"""A ByteTrack-class multi-object tracker in NumPy.

Per frame (`ByteTracker.update`):

1. Detections split by score: high (>= `high_thresh`) and low (`low_thresh` up to high).
2. Every live track's box is predicted one frame ahead (constant-velocity Kalman filter,
   all tracks in one call).
3. Stage 1: confirmed tracks (seen last frame or lost for a while) take high-score
   detections, by IoU of the predicted box, at least `match_iou`.
4. Stage 2: confirmed tracks seen last frame (or lost for at most `low_lost_frames`) and
   still unmatched take low-score detections (IoU at least `low_match_iou`): an object
   that is half hidden and scored low keeps its track instead of losing it (ByteTrack's
   idea; ByteTrack serves only tracks seen last frame, `low_lost_frames = 0`: one missed
   frame, then a low score while the object comes out from behind another, and its track
   waits for a high score). A track whose predicted box sits on a high-score box of
   another class takes no low-score box (`class_consistent`): the detector is sure the
   object is of that other class. The rest become lost.
5. Stage 3: tentative tracks take the high-score detections left (IoU >= `match_iou`);
   a tentative track that misses a frame is dropped.
   Tentative tracks still unmatched may take low-score detections left (IoU >=
   `low_match_iou`), so a new object whose score dips for a frame survives.
6. High-score detections still unmatched with score >= `new_track_thresh` start tentative
   tracks, unless they sit on a track seen on this frame (IoU >= 0.6: the detector's second
   box on one object, e.g. another class kept by class-aware NMS). A track is confirmed
   after `min_hits` matched frames in a row.
7. Lost tracks older than `lost_frames` expire; at most `max_tracks` live at once (the
   longest-lost go first), so memory stays bounded on an endless stream.

With `class_consistent` (default) a track only ever takes detections of its own class, so
its class never changes; without it, a track's class is the one with the highest summed
score over its detections (a one-frame misclassification does not flip it).

Track ids start at 1, grow by one per new track and are never reused within a tracker;
a tentative track that never gets confirmed leaves a gap. `update` returns the tracks
matched on this frame, tentative ones included and marked: counters must ignore those.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from vision_core.geometry import box_iou
from vision_core.track.assign import linear_assignment
from vision_core.track.kalman import KalmanBoxFilter, xywh_to_xyxy, xyxy_to_xywh
from vision_core.types import Detection

if TYPE_CHECKING:
    from vision_core.config.schema import TrackSection

__all__ = [
    "ByteTracker",
    "DetectionArray",
    "Track",
    "TrackBatch",
    "TrackState",
    "TrackerSettings",
]

TrackState = Literal["tentative", "confirmed", "lost"]

DUPLICATE_IOU = 0.6  # a detection overlapping a track seen now this much starts no track


@dataclass(frozen=True, slots=True)
class TrackerSettings:
    """The tracker's knobs; `from_config(cfg.track)` reads them from the config."""

    high_thresh: float = 0.5
    low_thresh: float = 0.1
    new_track_thresh: float = 0.6
    match_iou: float = 0.2
    low_match_iou: float = 0.5
    low_lost_frames: int = 2
    min_hits: int = 3
    lost_frames: int = 30
    class_consistent: bool = True
    max_tracks: int = 1000

    @classmethod
    def from_config(cls, section: TrackSection) -> TrackerSettings:
        return cls(
            high_thresh=section.high_thresh,
            low_thresh=section.low_thresh,
            new_track_thresh=section.new_track_thresh,
            match_iou=section.match_iou,
            low_match_iou=section.low_match_iou,
            low_lost_frames=section.low_lost_frames,
            min_hits=section.min_hits,
            lost_frames=section.lost_frames,
            class_consistent=section.class_consistent,
            max_tracks=section.max_tracks,
        )


@dataclass(frozen=True, slots=True)
class DetectionArray:
    """Detections of one frame as columns: the tracker's input without per-object objects.

    xyxy (N, 4) pixels, scores (N,), class_ids (N,); names maps class ids to names.
    """

    xyxy: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray
    names: Mapping[int, str]

    @classmethod
    def from_detections(cls, detections: Sequence[Detection]) -> DetectionArray:
        n = len(detections)
        xyxy = np.empty((n, 4))
        scores = np.empty(n)
        class_ids = np.empty(n, dtype=np.int64)
        names: dict[int, str] = {}
        for i, d in enumerate(detections):
            xyxy[i] = d.xyxy
            scores[i] = d.score
            class_ids[i] = d.class_id
            names[d.class_id] = d.class_name
        return cls(xyxy, scores, class_ids, names)

    @classmethod
    def of(
        cls,
        xyxy: Sequence[Sequence[float]] | np.ndarray,
        scores: Sequence[float] | np.ndarray,
        class_ids: Sequence[int] | np.ndarray,
        names: Mapping[int, str] | None = None,
    ) -> DetectionArray:
        """From plain arrays; names default to the class id as text."""
        ids = np.asarray(class_ids, dtype=np.int64).reshape(-1)
        return cls(
            np.asarray(xyxy, dtype=np.float64).reshape(-1, 4),
            np.asarray(scores, dtype=np.float64).reshape(-1),
            ids,
            dict(names) if names is not None else {int(c): str(c) for c in set(ids.tolist())},
        )

    def __len__(self) -> int:
        return len(self.scores)


@dataclass(frozen=True, slots=True)
class Track:
    """One track on one frame."""

    track_id: int
    class_id: int
    class_name: str
    score: float  # of the detection matched on this frame (0 when lost)
    xyxy: tuple[float, float, float, float]
    state: TrackState
    hits: int  # frames matched since the track started
    frames_lost: int  # frames since it was last matched (0: matched on this frame)

    @property
    def confirmed(self) -> bool:
        return self.state != "tentative"


@dataclass(frozen=True, slots=True)
class TrackBatch:
    """Tracks of one frame as columns (what counters read) that iterate as `Track`s."""

    frame_index: int
    track_ids: np.ndarray  # (N,) int64
    class_ids: np.ndarray  # (N,) int64
    xyxy: np.ndarray  # (N, 4) float64
    scores: np.ndarray  # (N,)
    confirmed: np.ndarray  # (N,) bool
    hits: np.ndarray  # (N,) int64
    frames_lost: np.ndarray  # (N,) int64
    names: Mapping[int, str]

    def __len__(self) -> int:
        return len(self.track_ids)

    def __iter__(self) -> Iterator[Track]:
        for i in range(len(self.track_ids)):
            cid = int(self.class_ids[i])
            lost = int(self.frames_lost[i])
            state: TrackState = (
                "tentative" if not self.confirmed[i] else "lost" if lost else "confirmed"
            )
            yield Track(
                track_id=int(self.track_ids[i]),
                class_id=cid,
                class_name=self.names.get(cid, str(cid)),
                score=float(self.scores[i]),
                xyxy=(
                    float(self.xyxy[i, 0]),
                    float(self.xyxy[i, 1]),
                    float(self.xyxy[i, 2]),
                    float(self.xyxy[i, 3]),
                ),
                state=state,
                hits=int(self.hits[i]),
                frames_lost=lost,
            )

    def only_confirmed(self) -> TrackBatch:
        keep = self.confirmed
        return TrackBatch(
            self.frame_index,
            self.track_ids[keep],
            self.class_ids[keep],
            self.xyxy[keep],
            self.scores[keep],
            self.confirmed[keep],
            self.hits[keep],
            self.frames_lost[keep],
            self.names,
        )


def _empty_batch(frame_index: int, names: Mapping[int, str]) -> TrackBatch:
    return TrackBatch(
        frame_index,
        np.empty(0, np.int64),
        np.empty(0, np.int64),
        np.empty((0, 4)),
        np.empty(0),
        np.empty(0, bool),
        np.empty(0, np.int64),
        np.empty(0, np.int64),
        names,
    )


class ByteTracker:
    """Online multi-object tracker; feed it every frame's detections in order."""

    def __init__(self, settings: TrackerSettings | None = None) -> None:
        self.settings = settings or TrackerSettings()
        self.kf = KalmanBoxFilter()
        self.names: dict[int, str] = {}
        self.frame_index = -1
        self._next_id = 1
        # live tracks as columns (tracked, lost and tentative alike)
        self._ids = np.empty(0, np.int64)
        self._cls = np.empty(0, np.int64)
        self._mean = np.empty((0, 8))
        self._cov = np.empty((0, 4, 3))  # Kalman covariance blocks
        self._hits = np.empty(0, np.int64)
        self._lost = np.empty(0, np.int64)  # frames since last match
        self._confirmed = np.empty(0, bool)
        self._score = np.empty(0)
        self._votes = np.empty((0, 0))  # summed score per class (class_consistent=False)

    # -- state ---------------------------------------------------------------------------

    @property
    def live_tracks(self) -> int:
        """Tracks held now: matched, lost (waiting to be found again) and tentative."""
        return len(self._ids)

    @property
    def next_id(self) -> int:
        return self._next_id

    def tracks(self, *, include_lost: bool = False) -> TrackBatch:
        """The live tracks after the last update (boxes: the filter's estimate)."""
        keep = np.ones(len(self._ids), bool) if include_lost else self._lost == 0
        return self._batch(keep)

    def _batch(self, keep: np.ndarray) -> TrackBatch:
        return TrackBatch(
            self.frame_index,
            self._ids[keep],
            self._cls[keep],
            xywh_to_xyxy(self._mean[keep, :4]),
            self._score[keep],
            self._confirmed[keep],
            self._hits[keep],
            self._lost[keep],
            self.names,
        )

    # -- the frame step ------------------------------------------------------------------

    def update(self, detections: Sequence[Detection] | DetectionArray) -> TrackBatch:
        """Advance one frame with its detections; returns the tracks matched on it."""
        dets = (
            detections
            if isinstance(detections, DetectionArray)
            else DetectionArray.from_detections(detections)
        )
        self.frame_index += 1
        self.names.update(dets.names)
        s = self.settings
        boxes = np.asarray(dets.xyxy, dtype=np.float64).reshape(-1, 4)
        scores = np.asarray(dets.scores, dtype=np.float64).reshape(-1)
        classes = np.asarray(dets.class_ids, dtype=np.int64).reshape(-1)
        valid = (
            np.isfinite(boxes).all(1)
            & (boxes[:, 2] > boxes[:, 0])
            & (boxes[:, 3] > boxes[:, 1])
            & np.isfinite(scores)
        )
        high = (valid & (scores >= s.high_thresh)).nonzero()[0]
        low = (valid & (scores >= s.low_thresh) & (scores < s.high_thresh)).nonzero()[0]

        # predict (a lost track keeps moving but stops growing or shrinking)
        was_lost = self._lost > 0
        if was_lost.any():
            self._mean[was_lost, 6:8] = 0.0
        self._mean, self._cov = self.kf.predict(self._mean, self._cov)
        pred = xywh_to_xyxy(self._mean[:, :4])
        # one IoU matrix (live tracks x detections) serves the three stages
        iou = (
            box_iou(pred, boxes) if len(pred) and len(boxes) else np.zeros((len(pred), len(boxes)))
        )
        cost = 1.0 - iou  # of each track taking each detection; inf: it may not
        if s.class_consistent:
            cost[self._cls[:, None] != classes[None, :]] = np.inf

        n = len(self._ids)
        det_of = np.full(n, -1, np.int64)  # the detection each track takes this frame
        pool = self._confirmed.nonzero()[0]
        tentative = (~self._confirmed).nonzero()[0]

        # stage 1: confirmed tracks x high-score detections
        m, u_pool, u_high = self._match(pool, high, cost, s.match_iou)
        det_of[pool[m[:, 0]]] = high[m[:, 1]]
        left_high = high[u_high]

        # stage 2: confirmed tracks seen lately x low-score detections (`_lost` counts the
        # frames since a track's last match, this one not yet included: 0 = seen last frame)
        unmatched = pool[u_pool]
        recent = unmatched[self._lost[unmatched] <= s.low_lost_frames]
        recent = recent[~self._outvoted(recent, high, iou, classes)]
        m2, _, _ = self._match(recent, low, cost, s.low_match_iou)
        det_of[recent[m2[:, 0]]] = low[m2[:, 1]]

        # stage 3: tentative tracks x the high-score detections left, then the tentative
        # tracks still unmatched x the low-score detections left: a new object whose
        # score dips for a frame is not dropped before it could be confirmed
        m3, u3t, u3 = self._match(tentative, left_high, cost, s.match_iou)
        det_of[tentative[m3[:, 0]]] = left_high[m3[:, 1]]
        low_free = np.ones(len(low), bool)
        low_free[m2[:, 1]] = False
        left_low = low[low_free]
        rest = tentative[u3t]
        m4, _, _ = self._match(rest, left_low, cost, s.low_match_iou)
        det_of[rest[m4[:, 0]]] = left_low[m4[:, 1]]
        new_dets = left_high[u3]
        new_dets = new_dets[scores[new_dets] >= s.new_track_thresh]

        # correct matched tracks, age the others
        matched = det_of >= 0
        if matched.any():
            idx = matched.nonzero()[0]
            self._mean[idx], self._cov[idx] = self.kf.update(
                self._mean[idx], self._cov[idx], xyxy_to_xywh(boxes[det_of[idx]])
            )
            self._score[idx] = scores[det_of[idx]]
            if not s.class_consistent:
                self._vote(idx, classes[det_of[idx]], scores[det_of[idx]])
        self._hits = np.where(matched, self._hits + 1, self._hits)
        self._lost = np.where(matched, 0, self._lost + 1)
        self._score = np.where(matched, self._score, 0.0)
        self._confirmed = self._confirmed | (matched & (self._hits >= s.min_hits))

        # no new track on top of a track seen now: a second box the detector put on the
        # same object (another class survives class-aware NMS) is not a second object
        # (IoU with the track's predicted box, from the matrix above)
        if len(new_dets) and matched.any():
            on_track = iou[matched][:, new_dets].max(0) >= DUPLICATE_IOU
            new_dets = new_dets[~on_track]
        # drop: tentative tracks that missed, lost tracks past the buffer, duplicates
        keep = np.where(self._confirmed, self._lost <= s.lost_frames, matched)
        keep &= ~self._duplicates_of_matched(matched, det_of, iou)
        self._select(keep)
        self._add(boxes[new_dets], classes[new_dets], scores[new_dets])
        return self._batch(self._lost == 0)

    # -- helpers -------------------------------------------------------------------------

    @staticmethod
    def _match(
        tracks: np.ndarray, dets: np.ndarray, cost: np.ndarray, min_iou: float
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Assign these tracks to these detections (indices into the frame's cost matrix)
        at IoU >= min_iou; matched pairs and the unmatched, as positions in the two lists."""
        if not len(tracks) or not len(dets):
            return np.empty((0, 2), np.int64), np.arange(len(tracks)), np.arange(len(dets))
        return linear_assignment(cost[tracks][:, dets], 1.0 - min_iou)

    def _outvoted(
        self, tracks: np.ndarray, high: np.ndarray, iou: np.ndarray, classes: np.ndarray
    ) -> np.ndarray:
        """Which of these tracks (bool each) sit on a high-score detection of another class
        (IoU of the predicted box >= DUPLICATE_IOU, from this frame's matrix): such a track
        takes no low-score box in stage 2. The detector is sure the object there is of
        the other class, and its low-score box of the track's class is a second opinion
        (class-aware NMS keeps both); else a track started on a misclassified frame held
        on to the object, and its crossings were counted under the wrong class. Only with
        `class_consistent`."""
        if not self.settings.class_consistent or not len(tracks) or not len(high):
            return np.zeros(len(tracks), bool)
        on = iou[tracks][:, high] >= DUPLICATE_IOU
        on &= self._cls[tracks][:, None] != classes[high][None, :]
        return np.asarray(on.any(1))

    def _vote(self, idx: np.ndarray, classes: np.ndarray, scores: np.ndarray) -> None:
        top = int(classes.max()) + 1
        if self._votes.shape[1] < top:
            grown = np.zeros((len(self._ids), top))
            grown[:, : self._votes.shape[1]] = self._votes
            self._votes = grown
        np.add.at(self._votes, (idx, classes), scores)
        self._cls[idx] = self._votes[idx].argmax(1)

    def _duplicates_of_matched(
        self, matched: np.ndarray, det_of: np.ndarray, iou: np.ndarray
    ) -> np.ndarray:
        """Lost tracks whose predicted box sits on a detection another track took
        (IoU > 0.85): the same object twice; the lost one goes if it has no more hits
        (ByteTrack drops the shorter-lived of such a pair). Read off this frame's IoU
        matrix of predicted boxes and detections."""
        out = np.zeros(len(self._ids), bool)
        lost = (self._confirmed & ~matched).nonzero()[0]
        live = matched.nonzero()[0]
        if len(lost) and len(live):
            overlap = iou[lost][:, det_of[live]]
            best = overlap.argmax(1)
            dup = (overlap[np.arange(len(lost)), best] > 0.85) & (
                self._hits[lost] <= self._hits[live][best]
            )
            out[lost[dup]] = True
        return out

    def _select(self, keep: np.ndarray) -> None:
        self._ids = self._ids[keep]
        self._cls = self._cls[keep]
        self._mean = self._mean[keep]
        self._cov = self._cov[keep]
        self._hits = self._hits[keep]
        self._lost = self._lost[keep]
        self._confirmed = self._confirmed[keep]
        self._score = self._score[keep]
        if self._votes.shape[0]:
            self._votes = self._votes[keep]

    def _add(self, boxes: np.ndarray, classes: np.ndarray, scores: np.ndarray) -> None:
        cap = self.settings.max_tracks
        room = cap - len(self._ids)
        if room < len(boxes):  # make room: the longest-lost tracks go first
            lost = np.flatnonzero(self._lost > 0)
            evict = lost[np.argsort(-self._lost[lost], kind="stable")][: len(boxes) - room]
            keep = np.ones(len(self._ids), bool)
            keep[evict] = False
            self._select(keep)
            room = cap - len(self._ids)
        if room < len(boxes):  # every slot holds a track seen now: the weakest wait
            order = np.argsort(-scores, kind="stable")[:room]
            boxes, classes, scores = boxes[order], classes[order], scores[order]
        k = len(boxes)
        if not k:
            return
        mean, cov = self.kf.initiate(xyxy_to_xywh(boxes))
        ids = np.arange(self._next_id, self._next_id + k, dtype=np.int64)
        self._next_id += k
        self._ids = np.concatenate([self._ids, ids])
        self._cls = np.concatenate([self._cls, classes])
        self._mean = np.concatenate([self._mean, mean])
        self._cov = np.concatenate([self._cov, cov])
        self._hits = np.concatenate([self._hits, np.ones(k, np.int64)])
        self._lost = np.concatenate([self._lost, np.zeros(k, np.int64)])
        self._confirmed = np.concatenate([self._confirmed, np.full(k, self.settings.min_hits <= 1)])
        self._score = np.concatenate([self._score, scores])
        if not self.settings.class_consistent:
            width = max(self._votes.shape[1], int(classes.max()) + 1)
            votes = np.zeros((len(self._ids), width))
            votes[: self._votes.shape[0], : self._votes.shape[1]] = self._votes
            votes[np.arange(len(self._ids) - k, len(self._ids)), classes] = scores
            self._votes = votes
