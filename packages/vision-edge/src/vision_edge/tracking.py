"""What the edge records besides per-frame StatsEvents: tracks, crossings, zone visits and
interval summaries (vision_core.track), and the annotated output of a run.

Tracking runs on the device, in local AND stream mode, on each processed frame's
detections (the local model's or the server's answer), frames in order: so both modes
count the same objects on the same video, and crossing events go through the device's own
durable outbox. Frames that got no detections (dropped) are not tracked: a track waits
`track.lost_frames` frames for its object before it expires.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2

from vision_core.errors import VisionError
from vision_core.fsutil import atomic_write_bytes
from vision_core.logging import StructuredLogger
from vision_core.media import Frame, encode_jpeg
from vision_core.types import Detection, TrackEvent

if TYPE_CHECKING:
    from vision_core.config.schema import PipelineConfig
    from vision_core.media.overlay import TrackOverlay
    from vision_core.track import SourceTracking
    from vision_core.track.events import IntervalSummariser
    from vision_core.track.mot import MotFileWriter
    from vision_core.track.tracker import TrackBatch

__all__ = ["Annotator", "EdgeTracking"]

FOURCC = {"mp4": "mp4v", "avi": "MJPG"}


class EdgeTracking:
    """Tracker, counters and summaries of this device's source (see the module docstring).

    Built lazily on the first frame (lines and zones in pixels need the frame size).
    """

    def __init__(
        self,
        cfg: PipelineConfig,
        *,
        source_id: str,
        model: str,
        outputs_dir: Path,
        class_names: Sequence[str] = (),
    ) -> None:
        self.section = cfg.track
        self.enabled = cfg.track.enabled
        self.summaries = cfg.deploy.edge.events in ("summaries", "both")
        self.source_id, self.model = source_id, model
        self.tracks_path = outputs_dir / "tracks.txt" if cfg.deploy.edge.save_tracks else None
        if self.enabled and class_names:
            from vision_core.track import check_class_names

            check_class_names(self.section, class_names)
        self.source: SourceTracking | None = None
        self.summariser: IntervalSummariser | None = None
        self.mot: MotFileWriter | None = None
        self.frames = 0
        self.events = 0

    @property
    def active(self) -> bool:
        return self.enabled or self.summaries

    def _start(self, frame: Frame) -> None:
        h, w = frame.image.shape[:2]
        if self.enabled:
            from vision_core.track import SourceTracking

            self.source = SourceTracking(
                self.section,
                width=w,
                height=h,
                source_id=self.source_id,
                model=self.model,
                summaries=self.summaries,
            )
            if self.tracks_path is not None:
                from vision_core.track.mot import MotFileWriter, TrackFiller

                self.mot = MotFileWriter(self.tracks_path, TrackFiller.from_config(self.section))
        elif self.summaries:
            from vision_core.track.events import IntervalSummariser

            self.summariser = IntervalSummariser(
                self.section.summary_sec, source_id=self.source_id, model=self.model
            )

    def step(
        self, frame: Frame, detections: Sequence[Detection]
    ) -> tuple[list[TrackEvent], TrackBatch | None]:
        """One processed frame (in frame order): its events and tracks (None untracked)."""
        if self.source is None and self.summariser is None:
            self._start(frame)
        self.frames += 1
        if self.source is not None:
            out = self.source.step(detections, ts=frame.ts)
            if self.mot is not None:
                self.mot.add(frame.index, out.tracks)
            self.events += len(out.events)
            return out.events, out.tracks
        if self.summariser is not None:
            done = self.summariser.add(frame.ts, detections)
            self.events += len(done)
            return list(done), None
        return [], None

    def close(self) -> list[TrackEvent]:
        """The last, partial summary; the tracks file closed."""
        last: list[TrackEvent] = []
        if self.source is not None:
            last = self.source.close()
        elif self.summariser is not None:
            last = list(self.summariser.flush())
        if self.mot is not None:
            self.mot.close()
        self.events += len(last)
        return last

    def line_counts(self) -> dict[tuple[str, str, str], int]:
        """(line, class, direction) -> crossings so far."""
        if self.source is None:
            return {}
        return {(ln, cls, str(d)): n for (ln, cls, d), n in self.source.counter.line_counts.items()}

    def occupancy(self) -> dict[str, int]:
        return self.source.counter.occupancy() if self.source is not None else {}

    def regions(self) -> tuple[list[Any], list[Any]]:
        """The lines and zones in pixels (for drawing)."""
        if self.source is None:
            return [], []
        return self.source.counter.lines.lines, self.source.counter.zones.zones

    def snapshot(self) -> dict[str, Any]:
        """What metrics.json reports (and `vision-edge score-tracking` reads)."""
        if not self.active:
            return {}
        out: dict[str, Any] = {"frames": self.frames, "events": self.events}
        if self.source is not None:
            nested: dict[str, dict[str, dict[str, int]]] = {}
            for (line, cls, direction), n in sorted(self.line_counts().items()):
                nested.setdefault(line, {}).setdefault(cls, {})[direction] = n
            out.update(
                line_counts=nested,
                occupancy=self.occupancy(),
                tracks_started=self.source.tracker.next_id - 1,
                tracks_file=str(self.tracks_path) if self.mot is not None else None,
            )
        return out


class Annotator:
    """Annotated frames (every `annotate_every`-th, as JPEGs) and the annotated video (every
    processed frame), written under the run's outputs/; a failed write is logged and never
    stops detection."""

    def __init__(
        self, cfg: PipelineConfig, outputs_dir: Path, log: StructuredLogger, fps_hint: float
    ) -> None:
        edge = cfg.deploy.edge
        self.dir = outputs_dir
        self.every = edge.annotate_every if edge.save_annotated else 0
        self.video_kind = edge.annotated_video
        self.fps_hint = fps_hint
        self.log = log
        self.overlay: TrackOverlay | None = None
        self.writer: cv2.VideoWriter | None = None
        self.saved = 0
        self.video_frames = 0
        self.video_path: Path | None = None
        self._size = (0, 0)
        self._failed = False

    @property
    def active(self) -> bool:
        return bool(self.every or self.video_kind)

    def add(
        self,
        frame: Frame,
        nth: int,
        detections: list[Detection],
        tracks: TrackBatch | None,
        tracking: EdgeTracking | None,
        source_fps: float = 0.0,
    ) -> None:
        """Annotate processed frame number `nth` (1-based) if anything is to be written."""
        want_jpeg = self.every and (nth - 1) % self.every == 0
        if not (want_jpeg or self.video_kind) or self._failed:
            return
        if self.overlay is None:
            from vision_core.media.overlay import TrackOverlay

            lines, zones = tracking.regions() if tracking is not None else ([], [])
            self.overlay = TrackOverlay(lines, zones)
        image = self.overlay.draw(
            frame.image,
            detections,
            tracks,
            line_counts=tracking.line_counts() if tracking is not None else None,
            occupancy=tracking.occupancy() if tracking is not None else None,
        )
        try:
            if want_jpeg:
                stem = f"{frame.index:08d}" + (f"_{Path(frame.name).stem}" if frame.name else "")
                atomic_write_bytes(self.dir / f"{stem}.jpg", encode_jpeg(image), fsync=False)
                self.saved += 1
            if self.video_kind:
                self._write_video(image, source_fps)
        except (OSError, VisionError) as exc:  # a full disk must not stop detection
            self.log.warn("edge.annotate_failed", f"annotated output not written: {exc}")

    def _write_video(self, image: Any, source_fps: float) -> None:
        if self.writer is None:
            h, w = image.shape[:2]
            self.dir.mkdir(parents=True, exist_ok=True)
            self.video_path = self.dir / f"annotated.{self.video_kind}"
            fps = source_fps or self.fps_hint or 15.0
            fourcc = cv2.VideoWriter_fourcc(*FOURCC[self.video_kind])  # type: ignore[attr-defined]
            self._size = (w, h)
            self.writer = cv2.VideoWriter(str(self.video_path), fourcc, fps, (w, h))
            if not self.writer.isOpened():
                self._failed = True
                raise VisionError(
                    f"OpenCV cannot write {self.video_path} ({self.video_kind}); try "
                    "deploy.edge.annotated_video = 'avi'"
                )
        size = self._size
        if image.shape[1] != size[0] or image.shape[0] != size[1]:  # a folder of odd sizes
            image = cv2.resize(image, size)
        self.writer.write(image)
        self.video_frames += 1

    def close(self) -> dict[str, Any]:
        if self.writer is not None:
            self.writer.release()
        return {
            "annotated_saved": self.saved,
            "annotated_video": str(self.video_path) if self.video_path else None,
            "annotated_video_frames": self.video_frames,
        }


def score_run(
    run_dir: Path,
    truth: Path,
    *,
    iou: float = 0.5,
    class_aware: bool = True,
    min_visibility: float = 0.0,
) -> dict[str, Any]:
    """Tracking scores of an edge run against MOT ground truth: IDF1, MOTA, id switches
    (the run's outputs/tracks.txt vs gt.txt) and the count error per line, class and
    direction (metrics.json's counts vs the scene's true counts, when `truth` is a scene
    folder written by vision_core.synth_video). Needs vision-edge[track-eval]."""
    import json

    from vision_core.errors import DatasetError
    from vision_core.track.mot import read_mot
    from vision_core.track.score import flatten_counts, score_counts, score_tracking

    record = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    tracking = record.get("metrics", {}).get("tracking", {})
    tracks_file = tracking.get("tracks_file")
    if not tracks_file:
        raise DatasetError(
            f"{run_dir}: the run wrote no tracks (run it with track.enabled = true and "
            "deploy.edge.save_tracks = true)"
        )
    gt_path = truth / "gt.txt" if truth.is_dir() else truth
    scores = score_tracking(
        read_mot(gt_path),
        read_mot(tracks_file),
        iou_threshold=iou,
        class_aware=class_aware,
        min_visibility=min_visibility,
    )
    out: dict[str, Any] = {"run": str(run_dir), "truth": str(gt_path), **scores.as_dict()}
    scene = truth / "scene.json" if truth.is_dir() else None
    if scene is not None and scene.is_file():
        true_counts = json.loads(scene.read_text(encoding="utf-8"))["true_counts"]
        counted = flatten_counts(tracking.get("line_counts", {}))
        count = score_counts(flatten_counts(true_counts), counted)
        out["counts"] = {
            "true_total": count.true_total,
            "counted_total": count.counted_total,
            "abs_error": count.abs_error,
            "errors": {"/".join(k): v for k, v in sorted(count.errors.items())},
        }
    return out
