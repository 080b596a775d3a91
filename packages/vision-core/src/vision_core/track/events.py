"""From counter results to the durable event structs of `vision_core.types`.

- `crossing_event` / `zone_event`: one `CrossingEvent` / `ZoneEvent` per crossing or zone
  enter/exit, each with its own `new_event_id()` (the store deduplicates by it, so an
  event resent after an outage is kept once).
- `IntervalSummariser`: one `IntervalSummary` per source and interval (frames, detections
  per class, distinct tracks per class), the alternative to one StatsEvent per frame.

Events per device-hour for one 15 fps camera (the reason for summaries):

- one StatsEvent per frame: 15 x 3600 = 54,000;
- summaries every `track.summary_sec` = 60 s: 60 (every 10 s: 360);
- crossings and zone events: one per object per line crossed or zone entered/left, so
  they follow the traffic, not the frame rate (a door with 200 passages an hour: 200).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TypedDict

from vision_core.track.lines import LineCrossing
from vision_core.track.tracker import DetectionArray, TrackBatch
from vision_core.track.zones import ZoneTransition
from vision_core.types import (
    CrossingEvent,
    Detection,
    IntervalSummary,
    ZoneEvent,
    new_event_id,
)

__all__ = [
    "IntervalSummariser",
    "crossing_event",
    "events_per_hour",
    "utc_from_ts",
    "zone_event",
]


def utc_from_ts(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


class _TrackedFields(TypedDict):
    """The fields a crossing and a zone event share."""

    event_id: str
    ts_utc: datetime
    source_id: str
    class_name: str
    track_id: int
    model: str
    frame_index: int


def _tracked_fields(
    seen: LineCrossing | ZoneTransition, source_id: str, model: str, event_id: str | None
) -> _TrackedFields:
    """A fresh event id unless one is given, the time in UTC, a frame index >= 0."""
    return {
        "event_id": event_id or new_event_id(),
        "ts_utc": utc_from_ts(seen.ts),
        "source_id": source_id,
        "class_name": seen.class_name,
        "track_id": seen.track_id,
        "model": model,
        "frame_index": max(0, seen.frame_index),
    }


def crossing_event(
    crossing: LineCrossing, *, source_id: str, model: str = "", event_id: str | None = None
) -> CrossingEvent:
    return CrossingEvent(
        line=crossing.line,
        direction=crossing.direction,
        **_tracked_fields(crossing, source_id, model, event_id),
    )


def zone_event(
    transition: ZoneTransition, *, source_id: str, model: str = "", event_id: str | None = None
) -> ZoneEvent:
    return ZoneEvent(
        zone=transition.zone,
        action=transition.action,
        dwell_sec=max(0.0, transition.dwell_sec),
        occupancy=max(0, transition.occupancy),
        lost=transition.lost,
        **_tracked_fields(transition, source_id, model, event_id),
    )


def events_per_hour(
    fps: float, *, summary_sec: float, crossings_per_hour: float = 0.0
) -> dict[str, float]:
    """Events one camera sends per hour in each mode (the note's table)."""
    return {
        "per_frame": fps * 3600.0,
        "summaries": 3600.0 / summary_sec,
        "crossings": crossings_per_hour,
        "summaries_plus_crossings": 3600.0 / summary_sec + crossings_per_hour,
    }


class IntervalSummariser:
    """Folds frames into one `IntervalSummary` per `interval_sec`, aligned to the clock.

    Intervals start at multiples of `interval_sec` since the Unix epoch (12:00:00,
    12:01:00, ... for 60 s), so the summaries of a fleet line up. `add` returns the
    summaries that a frame completed (usually none, or the one before it); `flush` closes
    the current one (at shutdown). An interval with no frames sends nothing.

    `tracks_by_class` counts distinct confirmed tracks seen in the interval;
    `new_tracks_by_class` those not seen in the interval before (summed over intervals it
    counts objects, as long as no track stays unseen for a whole interval).
    """

    def __init__(self, interval_sec: float, *, source_id: str, model: str = "") -> None:
        if not interval_sec > 0:
            raise ValueError(f"interval_sec must be > 0, got {interval_sec}")
        self.interval = float(interval_sec)
        self.source_id = source_id
        self.model = model
        self._start: float | None = None
        self._frames = 0
        self._dets: Counter[str] = Counter()
        self._tracks: dict[tuple[int, int], str] = {}
        self._previous: set[tuple[int, int]] = set()

    def add(
        self,
        ts: float,
        detections: Sequence[Detection] | DetectionArray,
        tracks: TrackBatch | None = None,
    ) -> list[IntervalSummary]:
        out: list[IntervalSummary] = []
        start = math.floor(ts / self.interval) * self.interval
        if self._start is not None and start != self._start:
            out.append(self._close())
        if self._start is None:
            self._start = start
        self._frames += 1
        if isinstance(detections, DetectionArray):
            for cid, n in Counter(detections.class_ids.tolist()).items():
                self._dets[detections.names.get(cid, str(cid))] += n
        else:
            self._dets.update(d.class_name for d in detections)
        if tracks is not None and len(tracks):
            keep = tracks.confirmed & (tracks.track_ids >= 0)
            for tid, cid in zip(
                tracks.track_ids[keep].tolist(), tracks.class_ids[keep].tolist(), strict=True
            ):
                self._tracks[(tid, cid)] = tracks.names.get(cid, str(cid))
        return out

    def flush(self) -> list[IntervalSummary]:
        """Close the current interval now (its end is the interval's end)."""
        return [self._close()] if self._start is not None else []

    def _close(self) -> IntervalSummary:
        assert self._start is not None
        tracks = Counter(self._tracks.values())
        new = Counter(name for key, name in self._tracks.items() if key not in self._previous)
        summary = IntervalSummary(
            event_id=new_event_id(),
            start_utc=utc_from_ts(self._start),
            end_utc=utc_from_ts(self._start + self.interval),
            source_id=self.source_id,
            frames=self._frames,
            detections_by_class=dict(self._dets),
            tracks_by_class=dict(tracks),
            new_tracks_by_class=dict(new),
            model=self.model,
        )
        self._previous = set(self._tracks)
        self._start = None
        self._frames = 0
        self._dets = Counter()
        self._tracks = {}
        return summary
