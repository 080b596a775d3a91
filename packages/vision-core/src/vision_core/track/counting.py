"""Lines and zones together, and everything tracking does for one source per frame.

- `TrackCounter`: the configured lines and zones over one source's tracks.
- `SourceTracking`: tracker + counter + interval summaries + event building for one video
  source: `step(detections, ts)` per frame returns the frame's tracks and the events to
  put in the outbox. An edge's frame loop (or a server's per-source state) holds one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from vision_core.track.anchors import Anchor
from vision_core.track.events import IntervalSummariser, crossing_event, zone_event
from vision_core.track.lines import Direction, LineCounter, LineCrossing
from vision_core.track.regions import LineRegion, ZoneRegion, resolve_regions
from vision_core.track.slots import TrackSlots, take_tracks
from vision_core.track.tracker import ByteTracker, DetectionArray, TrackBatch, TrackerSettings
from vision_core.track.zones import ZoneCounter, ZoneTransition
from vision_core.types import Detection, TrackEvent

if TYPE_CHECKING:
    from vision_core.config.schema import TrackSection

__all__ = ["CountUpdate", "FrameTracks", "SourceTracking", "TrackCounter"]


@dataclass(frozen=True, slots=True)
class CountUpdate:
    crossings: list[LineCrossing] = field(default_factory=list)
    zone_events: list[ZoneTransition] = field(default_factory=list)


class TrackCounter:
    """Line crossings and zone visits of one source's tracks."""

    def __init__(
        self,
        lines: Sequence[LineRegion] = (),
        zones: Sequence[ZoneRegion] = (),
        *,
        anchor: Anchor = "center",
        min_frames_on_side: int = 3,
        forget_frames: int = 31,
    ) -> None:
        # one set of per-track rows for both: a frame's tracks are looked up and their
        # anchor points computed once, not once per counter
        self.slots = TrackSlots(forget_frames)
        self.anchor: Anchor = anchor
        self.lines = LineCounter(
            lines, min_frames_on_side=min_frames_on_side, anchor=anchor, slots=self.slots
        )
        self.zones = ZoneCounter(
            zones, min_frames_on_side=min_frames_on_side, anchor=anchor, slots=self.slots
        )

    @classmethod
    def from_config(cls, section: TrackSection, width: int, height: int) -> TrackCounter:
        """The config's lines and zones for a width x height source (pixel points checked)."""
        lines, zones = resolve_regions(section, width, height)
        return cls(
            lines,
            zones,
            anchor=section.anchor,
            min_frames_on_side=section.min_frames_on_side,
            # remember a track as long as the tracker may still find it again
            forget_frames=section.lost_frames + 1,
        )

    def update(self, batch: TrackBatch, ts: float) -> CountUpdate:
        """Take the tracks observed on one frame; the crossings and zone events it completes."""
        seen = take_tracks(batch, self.slots, self.anchor)
        return CountUpdate(self.lines.step(seen, ts), self.zones.step(seen, ts))

    @property
    def line_counts(self) -> dict[tuple[str, str, Direction], int]:
        """(line, class, direction) -> crossings so far."""
        return dict(self.lines.counts)

    def occupancy(self) -> dict[str, int]:
        return self.zones.occupancy()


@dataclass(frozen=True, slots=True)
class FrameTracks:
    """One frame's outcome: the tracks seen on it and the events it produced."""

    tracks: TrackBatch
    events: list[TrackEvent]


class SourceTracking:
    """Tracker, counter and summaries of one source; events ready for the outbox."""

    def __init__(
        self,
        section: TrackSection,
        *,
        width: int,
        height: int,
        source_id: str,
        model: str = "",
        summaries: bool = True,
    ) -> None:
        self.tracker = ByteTracker(TrackerSettings.from_config(section))
        self.counter = TrackCounter.from_config(section, width, height)
        self.source_id = source_id
        self.model = model
        self.summariser = (
            IntervalSummariser(section.summary_sec, source_id=source_id, model=model)
            if summaries
            else None
        )

    def step(self, detections: Sequence[Detection] | DetectionArray, ts: float) -> FrameTracks:
        """Track one frame's detections (frames in order); ts: the frame's Unix time."""
        batch = self.tracker.update(detections)
        counted = self.counter.update(batch, ts)
        events: list[TrackEvent] = [
            crossing_event(c, source_id=self.source_id, model=self.model) for c in counted.crossings
        ]
        events.extend(
            zone_event(z, source_id=self.source_id, model=self.model) for z in counted.zone_events
        )
        if self.summariser is not None:
            events.extend(self.summariser.add(ts, detections, batch))
        return FrameTracks(batch, events)

    def close(self) -> list[TrackEvent]:
        """At the end of the source: a lost exit for every object still inside a zone (so
        occupancy kept from the events does not drift up with every restart), and the last,
        partial summary."""
        events: list[TrackEvent] = [
            zone_event(z, source_id=self.source_id, model=self.model)
            for z in self.counter.zones.close()
        ]
        if self.summariser is not None:
            events.extend(self.summariser.flush())
        return events
