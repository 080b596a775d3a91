"""Objects, not detections: tracking, line crossings, zone visits and their events.

Needs the `infer` extra (numpy) for everything but `vision_core.track.regions` (the pure
Python checks `load_config` runs); scoring against MOT ground truth needs `track-eval`.

    from vision_core.track import SourceTracking

    tracking = SourceTracking(cfg.track, width=w, height=h, source_id="cam-1", model="m")
    for frame in frames:
        out = tracking.step(detector.predict(frame.image), ts=frame_time)
        outbox.put(out.events)  # crossings, zone enter/exit, interval summaries

Names are imported on first use, so `import vision_core.track.regions` (done by every
config load) never imports numpy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from vision_core.errors import require

if TYPE_CHECKING:
    from vision_core.track.anchors import Anchor, anchor_points
    from vision_core.track.assign import linear_assignment
    from vision_core.track.counting import CountUpdate, FrameTracks, SourceTracking, TrackCounter
    from vision_core.track.events import (
        IntervalSummariser,
        crossing_event,
        events_per_hour,
        zone_event,
    )
    from vision_core.track.kalman import KalmanBoxFilter
    from vision_core.track.lines import LineCounter, LineCrossing
    from vision_core.track.mot import (
        MotData,
        MotFileWriter,
        MotWriter,
        TrackFiller,
        read_mot,
        write_mot,
    )
    from vision_core.track.regions import (
        LineRegion,
        ZoneRegion,
        check_class_names,
        check_points_in_frame,
        check_track_section,
        resolve_regions,
    )
    from vision_core.track.score import (
        CountScore,
        TrackingScores,
        flatten_counts,
        score_counts,
        score_tracking,
    )
    from vision_core.track.tracker import (
        ByteTracker,
        DetectionArray,
        Track,
        TrackBatch,
        TrackerSettings,
    )
    from vision_core.track.zones import ZoneCounter, ZoneTransition

_WHERE = {
    "Anchor": "anchors",
    "anchor_points": "anchors",
    "linear_assignment": "assign",
    "CountUpdate": "counting",
    "FrameTracks": "counting",
    "SourceTracking": "counting",
    "TrackCounter": "counting",
    "IntervalSummariser": "events",
    "crossing_event": "events",
    "events_per_hour": "events",
    "zone_event": "events",
    "KalmanBoxFilter": "kalman",
    "LineCounter": "lines",
    "LineCrossing": "lines",
    "MotData": "mot",
    "MotFileWriter": "mot",
    "MotWriter": "mot",
    "TrackFiller": "mot",
    "read_mot": "mot",
    "write_mot": "mot",
    "LineRegion": "regions",
    "ZoneRegion": "regions",
    "check_class_names": "regions",
    "check_points_in_frame": "regions",
    "check_track_section": "regions",
    "resolve_regions": "regions",
    "CountScore": "score",
    "TrackingScores": "score",
    "flatten_counts": "score",
    "score_counts": "score",
    "score_tracking": "score",
    "ByteTracker": "tracker",
    "DetectionArray": "tracker",
    "Track": "tracker",
    "TrackBatch": "tracker",
    "TrackerSettings": "tracker",
    "ZoneCounter": "zones",
    "ZoneTransition": "zones",
}

__all__ = [
    "Anchor",
    "ByteTracker",
    "CountScore",
    "CountUpdate",
    "DetectionArray",
    "FrameTracks",
    "IntervalSummariser",
    "KalmanBoxFilter",
    "LineCounter",
    "LineCrossing",
    "LineRegion",
    "MotData",
    "MotFileWriter",
    "MotWriter",
    "SourceTracking",
    "Track",
    "TrackBatch",
    "TrackCounter",
    "TrackFiller",
    "TrackerSettings",
    "TrackingScores",
    "ZoneCounter",
    "ZoneRegion",
    "ZoneTransition",
    "anchor_points",
    "check_class_names",
    "check_points_in_frame",
    "check_track_section",
    "crossing_event",
    "events_per_hour",
    "flatten_counts",
    "linear_assignment",
    "read_mot",
    "resolve_regions",
    "score_counts",
    "score_tracking",
    "write_mot",
    "zone_event",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'vision_core.track' has no attribute {name!r}")
    if module != "regions":
        require("numpy", "vision-core[infer]", "tracking")
    value = getattr(importlib.import_module(f"vision_core.track.{module}"), name)
    globals()[name] = value
    return value
