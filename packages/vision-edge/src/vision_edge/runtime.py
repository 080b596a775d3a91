"""The device loop: frames in, detections out, one StatsEvent per processed frame.

`EdgeRunner` owns a run's lifecycle; the work on frames is vision-core's `FramePipeline`:

- the pipeline's feeder thread reads the source (a camera read blocks there, never here)
  and its prepare thread runs the engine's `prepare` (letterbox + tensor, or the JPEG
  encode) up to two frames ahead;
- `infer` (the model call, the HTTP round trip, the LLM call) runs on this thread with
  `deploy.edge.runners = 1`, on a pool of `runners` threads otherwise (local mode), with
  results taken in frame order;
- this thread then counts the frame (`EdgeFigures`), records its StatsEvent, tracks it
  (`vision_edge.tracking`: crossings, zone visits, interval summaries, recorded through the
  same outbox) and writes the annotated frame and video;
- the stats sender (vision-core's `StatsRecorder`) posts what the outbox holds, in batches,
  with backoff.

Stats, exactly once: the event of a processed frame is committed to the durable outbox
(SQLite, `<workdir>/outbox/edge-<device_id>.db`) before the next frame is counted; the
sender deletes it only once the stats API has acknowledged it, and the API keeps one row
per event_id, so a resend after a lost answer counts once. A SIGKILL loses at most the
frames in flight, never a committed event. In stream mode the server records the events of
the frames it answers (its answer says so: `stats_recorded`); the edge records the frames
it processed itself (fallback) or that a server without stats answered. Dropped frames get
no event; they are counted by reason in metrics.json.

Shutdown: SIGINT or SIGTERM stop the source; the frames in the model are finished, the
outbox is flushed for up to `deploy.stats.flush_timeout_sec` (what is not sent stays on
disk for the next start) and the run ends `ok` with its metrics. A camera that hangs in a
read does not hold the exit: its reader thread is left behind.
"""

from __future__ import annotations

import re
import signal
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import cv2

from vision_core.config.schema import PipelineConfig
from vision_core.errors import ConfigError, MediaError
from vision_core.kernel import RunContext
from vision_core.logging import StructuredLogger
from vision_core.media import Frame, FrameSource
from vision_core.media.frame_source import CaptureFactory
from vision_core.pipeline import Engine, FrameJob, FramePipeline
from vision_core.stats import StatsRecorder, stats_api_key
from vision_core.types import make_stats_event
from vision_edge.figures import EdgeFigures
from vision_edge.tracking import Annotator, EdgeTracking

__all__ = ["EdgeRunner", "make_source", "outbox_path", "run_with"]

STATUS_EVERY_SEC = 1.0  # live console line
LOG_EVERY_SEC = 30.0  # progress line in the log when stderr is not a terminal


def outbox_path(cfg: PipelineConfig) -> Path:
    """Where this device's outbox lives: one file per device id in the workdir."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", cfg.deploy.edge.device_id) or "edge"
    return Path(cfg.run.workdir).resolve() / "outbox" / f"edge-{safe}.db"


def make_source(
    cfg: PipelineConfig,
    *,
    logger: StructuredLogger,
    capture_factory: CaptureFactory | None = None,
) -> FrameSource:
    """The FrameSource of `deploy.edge`, with errors that name the key."""
    from vision_core.secrets import camera_url, redact_url

    edge = cfg.deploy.edge
    kind = edge.source
    if kind == "video":
        if not edge.video_path:
            raise ConfigError("deploy.edge.video_path is empty (deploy.edge.source = 'video')")
        if not Path(edge.video_path).is_file():
            raise MediaError(f"deploy.edge.video_path: video file not found: {edge.video_path}")
        target: str = edge.video_path
    elif kind == "images":
        if not edge.images_dir:
            raise ConfigError("deploy.edge.images_dir is empty (deploy.edge.source = 'images')")
        if not Path(edge.images_dir).is_dir():
            raise MediaError(f"deploy.edge.images_dir: image folder not found: {edge.images_dir}")
        target = edge.images_dir
    else:
        target = camera_url(edge.camera, edge.camera_credentials_env)

    def on_skip(path: Path, reason: str) -> None:
        logger.warn("edge.frame_unreadable", f"skipped {reason}", path=str(path))

    def on_reconnect(attempt: int, backoff: float, reason: str) -> None:
        logger.warn(
            "edge.camera_reconnect",
            f"camera {redact_url(edge.camera)}: {reason}; reopening in {backoff:.1f}s "
            f"(attempt {attempt})",
            attempt=attempt,
            backoff_sec=backoff,
        )

    extra: dict[str, Any] = {}
    if capture_factory is not None:
        extra["capture_factory"] = capture_factory
    return FrameSource(
        kind,
        target,
        max_frames_per_sec=edge.max_frames_per_sec,
        max_frames=edge.max_frames,
        reconnect_max_backoff_sec=edge.reconnect_max_backoff_sec,
        on_skip=on_skip,
        on_reconnect=on_reconnect,
        **extra,
    )


class EdgeRunner:
    """One `vision-edge run` (see the module docstring)."""

    def __init__(
        self,
        ctx: RunContext,
        engine: Engine,
        source: FrameSource,
        *,
        install_signals: bool = True,
        status_stream: Any = None,
    ) -> None:
        self.ctx = ctx
        self.cfg = ctx.config
        self.edge = ctx.config.deploy.edge
        self.log = ctx.logger
        self.engine = engine
        self.model_name = engine.event_model  # recorded in the events this edge makes
        self.install_signals = install_signals
        self.source = source
        self.pipeline: FramePipeline[Frame] = FramePipeline(
            engine,
            runners=self.edge.runners,
            warmup=True,
            on_warmup_error=lambda exc: self.log.warn(
                "edge.warmup_failed", f"warm-up run failed: {exc}"
            ),
        )
        self.figures = EdgeFigures()
        self.stop_reason: str | None = None
        self.status_stream = status_stream if status_stream is not None else sys.stderr
        self._tty = bool(getattr(self.status_stream, "isatty", lambda: False)())
        self.frame_events = self.edge.events in ("frames", "both")
        names = getattr(getattr(engine, "detector", None), "class_names", {}) or {}
        self.tracking = EdgeTracking(
            self.cfg,
            source_id=self.edge.device_id,
            model=self.model_name,
            outputs_dir=ctx.outputs_dir,
            class_names=list(names.values()),
        )
        self.annotator = Annotator(
            self.cfg, ctx.outputs_dir, self.log, fps_hint=self.edge.max_frames_per_sec
        )
        self._annotated: dict[str, Any] = {}
        self._next_status = self._next_log = 0.0

    # -- lifecycle -------------------------------------------------------------------------

    def request_stop(self, reason: str) -> None:
        """Finish the frames in the model and end the run (thread- and signal-safe)."""
        if self.stop_reason is None:
            self.stop_reason = reason
        self.pipeline.stop()
        self.source.stop()

    def run(self) -> dict[str, Any]:
        # OpenCV's own thread pool would fight ONNX Runtime's threads for the same cores: the
        # pipeline's prepare thread is the parallelism of decode and preprocessing
        cv2_threads = cv2.getNumThreads()
        cv2.setNumThreads(1)
        try:
            return self._run()
        finally:
            cv2.setNumThreads(cv2_threads)

    def _run(self) -> dict[str, Any]:
        recorder = StatsRecorder.open(
            outbox_path(self.cfg),
            self.cfg.deploy.stats,
            api_key=stats_api_key(self.cfg),
            logger=self.log,
            name="edge-stats",
            device_id=self.edge.device_id,
            mqtt_extra="vision-edge[mqtt]",
        )
        if not recorder.delivering:
            self.log.info(
                "edge.stats_local",
                f"deploy.stats.endpoint is empty: events stay in the outbox {recorder.path}",
            )
        old_handlers: dict[signal.Signals, Any] = {}
        t0 = time.perf_counter()
        try:
            if self.install_signals and threading.current_thread() is threading.main_thread():
                for sig in (signal.SIGINT, signal.SIGTERM):
                    old_handlers[sig] = signal.signal(sig, self._on_signal)
            pending_at_start = recorder.pending()
            self.log.info(
                "edge.start",
                f"edge {self.edge.device_id}: {self.edge.mode} mode on {self.edge.source} "
                f"({self.source.display_target}), model {self.engine.model or '-'}; "
                f"{pending_at_start} event(s) pending from earlier runs",
                pending_at_start=pending_at_start,
            )
            self._loop(recorder)
        finally:
            end = time.perf_counter()
            if self.tracking.active:  # the last, partial summary
                self.figures.events_committed += recorder.record(self.tracking.close())
            self._annotated = self.annotator.close()
            self.figures.annotated = self._annotated["annotated_saved"]
            for sig, handler in old_handlers.items():
                signal.signal(sig, handler)
            self.engine.close()
            recorder.close()
            self._metrics(recorder, wall=end - t0, steady=end - self.figures.started_at)
        self._final_line(recorder)
        annotated = self.ctx.metrics.get("annotated", {})
        return {
            "outbox": str(recorder.path),
            "annotated_dir": str(self.ctx.outputs_dir) if self.figures.annotated else None,
            "annotated_video": annotated.get("annotated_video"),
            "tracks": self.ctx.metrics.get("tracking", {}).get("tracks_file"),
            "stopped_by": self.stop_reason or "source ended",
        }

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self.stop_reason is not None:
            # a second Ctrl-C while flushing: give up the flush, keep the records
            raise KeyboardInterrupt
        self.log.info("edge.stopping", f"{name}: finishing the frames, then flushing the outbox")
        self.request_stop(name)

    # -- the loop --------------------------------------------------------------------------

    def _loop(self, recorder: StatsRecorder) -> None:
        now = time.monotonic()
        self._next_status, self._next_log = now + STATUS_EVERY_SEC, now + LOG_EVERY_SEC
        for job in self.pipeline.run(self.source):
            self.figures.started_at = self.pipeline.started_at
            self._finish(job, recorder)
            now = time.monotonic()
            if self._tty and now >= self._next_status:
                line = self.figures.status_line(
                    self.edge.device_id, self.edge.mode, recorder.pending()
                )
                self.status_stream.write(line)
                self.status_stream.flush()
                self._next_status = now + STATUS_EVERY_SEC
            if now >= self._next_log:
                self.figures.progress(self.log, recorder.pending())
                self._next_log = now + LOG_EVERY_SEC
        if self.source.skipped:
            self.figures.dropped["unreadable"] += len(self.source.skipped)
        if self._tty:
            self.status_stream.write("\n")

    def _finish(self, job: FrameJob[Frame], recorder: StatsRecorder) -> None:
        """Count one frame, record its events, track it, annotate it."""
        frame = job.input
        outcome = job.outcome
        if outcome is None or outcome.dropped is not None:
            reason = "error" if outcome is None else str(outcome.dropped)
            detail = (
                f"{type(job.error).__name__}: {job.error}"
                if job.error is not None
                else (outcome.error if outcome is not None and outcome.error else reason)
            )
            self.figures.dropped_frame(reason, frame.index, frame.name, detail, self.log)
            return
        self.figures.processed(outcome, job.latency_ms)
        events: list[Any] = []
        if outcome.record and self.frame_events:
            events.append(
                make_stats_event(
                    source_id=self.edge.device_id,
                    mode=outcome.where,
                    frame_index=frame.index,
                    latency_ms=job.latency_ms,
                    detections=outcome.detections,
                    model=self.model_name if outcome.where != "stream" else "",
                    ts_utc=datetime.fromtimestamp(frame.ts, UTC),
                )
            )
        tracks = None
        if self.tracking.active:
            tracked, tracks = self.tracking.step(frame, outcome.detections)
            events.extend(tracked)
        if events:
            self.figures.events_committed += recorder.record(events)  # once committed
        if self.annotator.active:
            self.annotator.add(
                frame,
                self.figures.frames,
                outcome.detections,
                tracks,
                self.tracking if self.tracking.enabled else None,
                self.source.fps,
            )

    # -- the end ---------------------------------------------------------------------------

    def _metrics(self, recorder: StatsRecorder, *, wall: float, steady: float) -> None:
        m = self.ctx.metrics
        m.update(
            mode=self.edge.mode,
            source=self.edge.source,
            device_id=self.edge.device_id,
            model=self.engine.model,
        )
        m.update(self.figures.as_metrics())
        m.update(reconnects=self.source.reconnects, engine=self.engine.snapshot())
        if self.tracking.active:
            m["tracking"] = self.tracking.snapshot()
        if self.annotator.active:
            m["annotated"] = self._annotated
        snap = recorder.snapshot()
        m["outbox"] = snap
        m["events_pending"] = snap.get("pending", 0)
        m["wall_sec"] = round(wall, 3)
        m["fps"] = round(self.figures.frames / steady, 3) if steady > 0 else 0.0

    def _final_line(self, recorder: StatsRecorder) -> None:
        m = self.ctx.metrics
        snap = recorder.snapshot()
        dead = snap.get("dead_letters", 0)
        self.log.info(
            "edge.summary",
            f"{self.figures.frames} frames, {m['fps']:.1f} fps, p50 "
            f"{m['latency_ms']['p50']:.1f} ms, {self.figures.detections_total} detections, "
            f"dropped {dict(self.figures.dropped) or 0}, {snap.get('pending', 0)} event(s) "
            "pending" + (f", {dead} dead letter(s)" if dead else ""),
        )


def run_with(
    ctx: RunContext,
    make_engine: Callable[[RunContext], Engine],
    *,
    capture_factory: CaptureFactory | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """Open the source (first: a wrong path fails before a model loads), build the engine,
    run the loop: what each deployer entry point does."""
    source = make_source(ctx.config, logger=ctx.logger, capture_factory=capture_factory)
    engine = make_engine(ctx)
    try:
        runner = EdgeRunner(ctx, engine, source, **kwargs)
    except BaseException:
        engine.close()
        raise
    return runner.run()
