"""The device loop: frames in, detections out, one StatsEvent per processed frame.

Threads:
- prefetch: reads frames from the source and runs the engine's `prepare` (decode,
  letterbox, tensor; or the JPEG encode), at most `PREFETCH` frames ahead;
- main: the engine's `infer` (the model call), then the event, the annotated frame and the
  figures; so frame N+1 is decoded and preprocessed while frame N is in the model;
- the stats sender (vision-core): posts what the outbox holds, in batches, with backoff.

Stats, exactly once: the event of a processed frame is committed to the durable outbox
(SQLite, `<workdir>/outbox/edge-<device_id>.db`) before the next frame is taken; the
sender deletes it only once the stats API has acknowledged it, and the API keeps one row
per event_id, so a resend after a lost answer counts once. A SIGKILL loses at most the
frame in flight, never a committed event. In stream mode the server records the events of
the frames it answers (its answer says so: `stats_recorded`); the edge records the frames
it processed itself (fallback) or that a server without stats answered. Dropped frames get
no event; they are counted by reason in metrics.json.

Shutdown: SIGINT or SIGTERM stop the source; the frame in the model is finished, the outbox
is flushed for up to `deploy.edge.flush_timeout_sec` (what is not sent stays on disk for
the next start) and the run ends `ok` with its metrics.
"""

from __future__ import annotations

import queue
import re
import signal
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from types import FrameType
from typing import Any

import cv2
import numpy as np

from vision_core.config.schema import PipelineConfig
from vision_core.errors import ConfigError, MediaError, VisionError
from vision_core.fsutil import atomic_write_bytes
from vision_core.kernel import RunContext
from vision_core.logging import StructuredLogger
from vision_core.media import Frame, FrameSource, draw_detections
from vision_core.media.frame_source import CaptureFactory
from vision_core.outbox import Outbox
from vision_core.stats_sender import StatsSender
from vision_core.types import make_stats_event
from vision_edge.engines import Engine, Outcome

__all__ = ["EdgeRunner", "outbox_path"]

PREFETCH = 2  # frames prepared ahead of the model
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
        target = edge.camera

    def on_skip(path: Path, reason: str) -> None:
        logger.warn("edge.frame_unreadable", f"skipped {reason}", path=str(path))

    def on_reconnect(attempt: int, backoff: float, reason: str) -> None:
        logger.warn(
            "edge.camera_reconnect",
            f"camera {edge.camera}: {reason}; reopening in {backoff:.1f}s (attempt {attempt})",
            attempt=attempt,
            backoff_sec=backoff,
        )

    extra: dict[str, Any] = {}
    if capture_factory is not None:
        extra["capture_factory"] = capture_factory
    return FrameSource(
        kind,
        target,
        fps_limit=edge.fps_limit,
        max_frames=edge.max_frames,
        reconnect_max_backoff_sec=edge.reconnect_max_backoff_sec,
        on_skip=on_skip,
        on_reconnect=on_reconnect,
        **extra,
    )


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


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
        self._model_name = engine.event_model  # recorded in every event
        self.install_signals = install_signals
        self.source = source
        self.stop_event = threading.Event()
        self.stop_reason: str | None = None
        self.status_stream = status_stream if status_stream is not None else sys.stderr
        # figures
        self.frames = 0
        self.latencies: list[float] = []
        self.infer_ms: list[float] = []
        self.dropped: Counter[str] = Counter()
        self.fallbacks: Counter[str] = Counter()
        self.per_class: Counter[str] = Counter()
        self.detections_total = 0
        self.events_committed = 0
        self.annotated = 0
        self.errors: list[dict[str, Any]] = []
        self._stop_event_time: float | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def request_stop(self, reason: str) -> None:
        """Finish the frame in hand and end the run (thread- and signal-safe)."""
        if not self.stop_event.is_set():
            self.stop_reason = reason
            self.stop_event.set()
            self.source.stop()

    def run(self) -> dict[str, Any]:
        # OpenCV's own thread pool would fight ONNX Runtime's threads for the same cores: the
        # prefetch thread is the parallelism of decode and preprocessing
        cv2_threads = cv2.getNumThreads()
        cv2.setNumThreads(1)
        try:
            return self._run()
        finally:
            cv2.setNumThreads(cv2_threads)

    def _run(self) -> dict[str, Any]:
        outbox = Outbox.from_config(outbox_path(self.cfg), self.cfg.deploy.stats, logger=self.log)
        sender: StatsSender | None = None
        old_handlers: dict[signal.Signals, Any] = {}
        try:
            if self.cfg.deploy.stats.endpoint:
                sender = StatsSender.from_config(
                    outbox, self.cfg.deploy.stats, logger=self.log, name="edge-stats"
                ).start()
            else:
                self.log.info(
                    "edge.stats_local",
                    f"deploy.stats.endpoint is empty: events stay in the outbox {outbox.path}",
                )
            if self.install_signals and threading.current_thread() is threading.main_thread():
                for sig in (signal.SIGINT, signal.SIGTERM):
                    old_handlers[sig] = signal.signal(sig, self._on_signal)
            pending_at_start = outbox.pending()
            self.log.info(
                "edge.start",
                f"edge {self.edge.device_id}: {self.edge.mode} mode on {self.edge.source} "
                f"({self.source.target}), model {self.engine.model or '-'}; "
                f"{pending_at_start} event(s) pending from earlier runs",
                pending_at_start=pending_at_start,
            )
            t0 = time.perf_counter()
            self._loop(outbox, sender)
            end = time.perf_counter()
            wall = end - t0
            steady = end - self._t_start  # from the first frame after the warm-up run
        finally:
            for sig, handler in old_handlers.items():
                signal.signal(sig, handler)
            self.engine.close()
            flushed = True
            if sender is not None:
                flushed = sender.close(self.edge.flush_timeout_sec)
            pending = outbox.pending()
            outbox_state = {
                "path": str(outbox.path),
                "pending": pending,
                "dropped_total": outbox.dropped,
                "last_error": outbox.last_error,
                "flushed": flushed,
                **(sender.snapshot() if sender is not None else {}),
            }
            outbox.close()
            self.ctx.metrics.update(self._figures())
            self.ctx.metrics["outbox"] = outbox_state
            self.ctx.metrics["events_pending"] = pending
        self.ctx.metrics["wall_sec"] = round(wall, 3)
        self.ctx.metrics["fps"] = round(self.frames / steady, 3) if steady > 0 else 0.0
        self._final_line(pending)
        return {
            "outbox": str(outbox_path(self.cfg)),
            "outputs_dir": str(self.ctx.run_dir / "outputs") if self.annotated else None,
            "stopped_by": self.stop_reason or "source ended",
        }

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self.stop_event.is_set():
            # a second Ctrl-C while flushing: give up the flush, keep the records
            raise KeyboardInterrupt
        self.log.info("edge.stopping", f"{name}: finishing the frame, then flushing the outbox")
        self.request_stop(name)

    # -- the loop --------------------------------------------------------------------------

    def _prefetch(self, out: queue.Queue[Any]) -> None:
        try:
            for frame in self.source:
                if self.stop_event.is_set():
                    break
                t_read = time.perf_counter()
                try:
                    item = self.engine.prepare(frame)
                    prep_ms = (time.perf_counter() - t_read) * 1000.0
                    entry: Any = (frame, item, prep_ms, t_read, None)
                except Exception as exc:  # one bad frame: counted, the run goes on
                    entry = (frame, None, 0.0, t_read, exc)
                if not self._put(out, entry):
                    break
        except BaseException as exc:  # the source itself failed: end the run with it
            self._put(out, exc, force=True)
            return
        self._put(out, None, force=True)

    def _put(self, out: queue.Queue[Any], entry: Any, force: bool = False) -> bool:
        while True:
            if self.stop_event.is_set() and not force:
                return False
            try:
                out.put(entry, timeout=0.1)
                return True
            except queue.Full:
                if force and self.stop_event.is_set():
                    return False
                continue

    def _items(self) -> Iterator[tuple[Frame, Any, float, float, BaseException | None]]:
        q: queue.Queue[Any] = queue.Queue(maxsize=PREFETCH)
        worker = threading.Thread(target=self._prefetch, args=(q,), name="edge-prefetch")
        worker.daemon = True
        worker.start()
        try:
            while True:
                try:
                    entry = q.get(timeout=0.1)
                except queue.Empty:
                    if self.stop_event.is_set() and not worker.is_alive():
                        return
                    continue
                if entry is None:
                    return
                if isinstance(entry, BaseException):
                    raise entry
                if self.stop_event.is_set():
                    return
                yield entry
        finally:  # the source ended or the loop raised: let the prefetch thread go
            self.stop_event.set()
            self.source.stop()
            worker.join(timeout=5.0)

    def _loop(self, outbox: Outbox, sender: StatsSender | None) -> None:
        annotate_dir = self.ctx.run_dir / "outputs" if self.edge.save_annotated else None
        runners = self.edge.runners if self.engine.concurrent else 1
        pool = ThreadPoolExecutor(runners, thread_name_prefix="edge-infer") if runners > 1 else None
        in_flight: deque[tuple[Frame, Future[Outcome] | Outcome, float, float]] = deque()
        warm = False
        self._next_status = time.monotonic() + STATUS_EVERY_SEC
        self._next_log = time.monotonic() + LOG_EVERY_SEC
        self._tty = bool(getattr(self.status_stream, "isatty", lambda: False)())
        self._t_start = time.perf_counter()
        try:
            for frame, item, prep_ms, t_read, prep_exc in self._items():
                if not warm:  # the model's first run allocates: not a frame's latency
                    warm = True
                    try:
                        self.engine.warmup(frame)
                    except Exception as exc:  # the real run of this frame reports it
                        self.log.warn("edge.warmup_failed", f"warm-up run failed: {exc}")
                    self._t_start = time.perf_counter()
                if prep_exc is not None:
                    self._drop("error", frame, f"{type(prep_exc).__name__}: {prep_exc}")
                    continue
                if pool is None:
                    in_flight.append((frame, self._infer(frame, item), prep_ms, t_read))
                else:  # up to `runners` frames in the model; results taken in frame order
                    fut = pool.submit(self._infer, frame, item)
                    in_flight.append((frame, fut, prep_ms, t_read))
                while in_flight and (pool is None or len(in_flight) >= runners):
                    self._finish(in_flight.popleft(), outbox, sender, annotate_dir)
            while in_flight:
                self._finish(in_flight.popleft(), outbox, sender, annotate_dir)
        finally:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
        if self.source.skipped:
            self.dropped["unreadable"] += len(self.source.skipped)
        if self._tty:
            self.status_stream.write("\n")

    def _infer(self, frame: Frame, item: Any) -> Outcome:
        """The engine's infer; one bad frame comes back as a dropped Outcome."""
        try:
            return self.engine.infer(frame, item)
        except ConfigError:
            raise  # e.g. the server refused the API key: no later frame can do better
        except Exception as exc:  # one bad frame never takes the run down
            return Outcome(dropped="error", error=f"{type(exc).__name__}: {exc}")

    def _finish(
        self,
        entry: tuple[Frame, Future[Outcome] | Outcome, float, float],
        outbox: Outbox,
        sender: StatsSender | None,
        annotate_dir: Path | None,
    ) -> None:
        frame, result, prep_ms, t_read = entry
        outcome = result.result() if isinstance(result, Future) else result
        self._account(frame, outcome, prep_ms, t_read, outbox, sender, annotate_dir)
        now = time.monotonic()
        if self._tty and now >= self._next_status:
            self._status_line(outbox)
            self._next_status = now + STATUS_EVERY_SEC
        if now >= self._next_log:
            self._progress_log(outbox)
            self._next_log = now + LOG_EVERY_SEC

    def _drop(self, reason: str, frame: Frame, detail: str) -> None:
        self.dropped[reason] += 1
        if len(self.errors) < 50:
            self.errors.append({"frame_index": frame.index, "reason": reason, "error": detail})
        if self.dropped[reason] <= 5 or self.dropped[reason] % 100 == 0:
            self.log.warn(
                f"edge.frame_{reason}",
                f"frame {frame.index} {frame.name}: {detail}",
                frame_index=frame.index,
                dropped=self.dropped[reason],
            )

    def _account(
        self,
        frame: Frame,
        outcome: Outcome,
        prep_ms: float,
        t_read: float,
        outbox: Outbox,
        sender: StatsSender | None,
        annotate_dir: Path | None,
    ) -> None:
        if outcome.dropped is not None:
            self._drop(outcome.dropped, frame, outcome.error or outcome.dropped)
            return
        if outcome.fallback is not None:
            self.fallbacks[outcome.fallback] += 1
        latency = prep_ms + outcome.infer_ms
        self.frames += 1
        self.latencies.append(latency)
        self.infer_ms.append(outcome.infer_ms)
        dets = outcome.detections
        self.detections_total += len(dets)
        self.per_class.update(d.class_name for d in dets)
        if outcome.record:
            event = make_stats_event(
                source_id=self.edge.device_id,
                mode=outcome.where,
                frame_index=frame.index,
                latency_ms=latency,
                detections=dets,
                model=self._model_name if outcome.where != "stream" else "",
            )
            outbox.put(event)  # returns once committed
            self.events_committed += 1
            if sender is not None:
                sender.notify()
        if annotate_dir is not None and (self.frames - 1) % self.edge.annotate_every == 0:
            self._save_annotated(annotate_dir, frame, dets)

    def _save_annotated(self, folder: Path, frame: Frame, dets: list[Any]) -> None:
        try:
            ok, buf = cv2.imencode(".jpg", draw_detections(frame.image, dets))
            if not ok:
                raise VisionError("JPEG encode failed")
            stem = f"{frame.index:08d}" + (f"_{Path(frame.name).stem}" if frame.name else "")
            atomic_write_bytes(folder / f"{stem}.jpg", bytes(buf), fsync=False)
            self.annotated += 1
        except (OSError, VisionError) as exc:  # a full disk must not stop detection
            self.log.warn("edge.annotate_failed", f"annotated frame not saved: {exc}")

    # -- figures ---------------------------------------------------------------------------

    def _figures(self) -> dict[str, Any]:
        lat = self.latencies
        return {
            "mode": self.edge.mode,
            "source": self.edge.source,
            "device_id": self.edge.device_id,
            "model": self.engine.model,
            "frames": self.frames,
            "frames_dropped": sum(self.dropped.values()),
            "dropped": dict(self.dropped),
            "stream_fallbacks": dict(self.fallbacks),
            "latency_ms": {
                "p50": round(percentile(lat, 50), 3),
                "p95": round(percentile(lat, 95), 3),
                "mean": round(float(np.mean(lat)), 3) if lat else 0.0,
            },
            "inference_ms_p50": round(percentile(self.infer_ms, 50), 3),
            "detections_total": self.detections_total,
            "detections_per_class": dict(sorted(self.per_class.items())),
            "events_committed": self.events_committed,
            "reconnects": self.source.reconnects,
            "annotated_saved": self.annotated,
            "errors": self.errors,
            "engine": self.engine.snapshot(),
        }

    def _rate(self) -> float:
        elapsed = time.perf_counter() - self._t_start
        return self.frames / elapsed if elapsed > 0 else 0.0

    def _status_line(self, outbox: Outbox) -> None:
        lat = self.latencies[-50:]
        line = (
            f"\r{self.edge.device_id} {self.edge.mode}: {self.frames} frames "
            f"{self._rate():.1f} fps, p50 {percentile(lat, 50):.1f} ms, "
            f"{self.detections_total} detections, dropped {sum(self.dropped.values())}, "
            f"outbox {outbox.pending()}   "
        )
        self.status_stream.write(line)
        self.status_stream.flush()

    def _progress_log(self, outbox: Outbox) -> None:
        self.log.info(
            "edge.progress",
            f"{self.frames} frames at {self._rate():.1f} fps, "
            f"p50 {percentile(self.latencies[-200:], 50):.1f} ms, "
            f"{self.detections_total} detections, {outbox.pending()} event(s) pending",
            frames=self.frames,
        )

    def _final_line(self, pending: int) -> None:
        m = self.ctx.metrics
        self.log.info(
            "edge.summary",
            f"{self.frames} frames, {m['fps']:.1f} fps, p50 {m['latency_ms']['p50']:.1f} ms, "
            f"{self.detections_total} detections, dropped {dict(self.dropped) or 0}, "
            f"{pending} event(s) pending",
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
