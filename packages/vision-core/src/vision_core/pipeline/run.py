"""`FramePipeline`: inputs -> frames -> engine.prepare -> engine.infer, results in order.

The one frame path of vision-edge (a camera, a video, an image folder) and vision-label
(a folder of image files). Threads:

- the feeder: takes inputs one by one (a FrameSource's frames: a camera read blocks here,
  never on the consumer) and hands each to the prepare pool;
- the prepare pool (`prepare_workers` threads, at most `prepare_ahead` inputs in flight):
  `open(input)` (decoding a file into a Frame; nothing for a source's frames) then
  `engine.prepare(frame)`. OpenCV and NumPy release the GIL, so this overlaps the model;
- infer: `engine.infer` runs on the thread that iterates `run()` when `runners` is 1, and
  on a pool of `runners` threads otherwise (only for engines with `concurrent = True`):
  then up to `runners` frames are in the model at once, and results still come out in
  input order.

Each input comes out once as a `FrameJob`: its frame and Outcome, or the error that kept
it from being prepared (a file that is not an image): one bad input never stops the rest.
A ConfigError from `infer` (no later frame can do better) ends the run. `stop()` (thread-
and signal-safe) ends it after the frames already in the model.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from vision_core.errors import ConfigError
from vision_core.media.frame import Frame
from vision_core.pipeline.engine import Engine, Outcome
from vision_core.pipeline.window import ordered_map

__all__ = ["FrameJob", "FramePipeline"]

T = TypeVar("T")
_END = object()


@dataclass(slots=True)
class FrameJob(Generic[T]):
    """One input's way through the pipeline."""

    input: T  # what was given (a Frame, a file path)
    frame: Frame | None = None  # None when the input could not be opened
    item: Any = None  # engine.prepare's result
    read_at: float = 0.0  # time.perf_counter() when the feeder took the input
    prepare_ms: float = 0.0  # open + prepare
    error: BaseException | None = None  # open or prepare failed: no outcome
    outcome: Outcome | None = None  # infer's result

    @property
    def latency_ms(self) -> float:
        """Prepare plus inference: the work done on this frame (not the waits between)."""
        return self.prepare_ms + (self.outcome.infer_ms if self.outcome else 0.0)


class FramePipeline(Generic[T]):
    """See the module docstring."""

    def __init__(
        self,
        engine: Engine,
        *,
        open: Callable[[T], Frame] | None = None,
        prepare_workers: int = 1,
        prepare_ahead: int = 2,
        runners: int = 1,
        warmup: bool = False,
        on_warmup_error: Callable[[BaseException], None] | None = None,
    ) -> None:
        if prepare_workers < 1 or prepare_ahead < 1 or runners < 1:
            raise ValueError("prepare_workers, prepare_ahead and runners must be >= 1")
        self.engine = engine
        self._open = open
        self.prepare_workers = prepare_workers
        self.prepare_ahead = max(prepare_ahead, prepare_workers)
        self.runners = runners if engine.concurrent else 1
        self.warmup = warmup
        self._on_warmup_error = on_warmup_error
        self._stop = threading.Event()
        self.started_at = time.perf_counter()  # after the warm-up run, when there is one

    def stop(self) -> None:
        """End the run after the frames in the model (thread- and signal-safe)."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    # -- stage 1: feeder thread + prepare pool --------------------------------------------

    def _prepare(self, job: FrameJob[T]) -> FrameJob[T]:
        t0 = time.perf_counter()
        try:
            frame = self._open(job.input) if self._open is not None else job.input
            if not isinstance(frame, Frame):
                raise TypeError(f"a pipeline input must open to a Frame, got {type(frame)}")
            job.frame = frame
            job.item = self.engine.prepare(frame)
        except Exception as exc:  # one bad input: reported with its job, the run goes on
            job.error = exc
        job.prepare_ms = (time.perf_counter() - t0) * 1000.0
        return job

    def _feed(self, inputs: Iterable[T], out: queue.Queue[Any]) -> None:
        """The feeder thread: takes each input, hands its prepare to the pool and its
        future to the consumer at once (the bounded queue is the window: a slow model
        slows the reads instead of growing a backlog; a frame never waits for the read of
        the next one)."""
        try:
            with ThreadPoolExecutor(self.prepare_workers, thread_name_prefix="prepare") as pool:
                for x in inputs:
                    if self._stop.is_set():
                        return
                    job: FrameJob[T] = FrameJob(x, read_at=time.perf_counter())
                    if not self._put(out, pool.submit(self._prepare, job)):
                        return
        except BaseException as exc:  # the source itself failed: the run ends with it
            self._put(out, exc, force=True)
            return
        self._put(out, _END, force=True)

    def _put(self, out: queue.Queue[Any], entry: Any, force: bool = False) -> bool:
        while True:
            if self._stop.is_set() and not force:
                return False
            try:
                out.put(entry, timeout=0.1)
                return True
            except queue.Full:
                if force and self._stop.is_set():
                    return False

    def _prepared(self, inputs: Iterable[T]) -> Iterator[FrameJob[T]]:
        q: queue.Queue[Any] = queue.Queue(maxsize=self.prepare_ahead)
        feeder = threading.Thread(target=self._feed, args=(inputs, q), name="pipeline-feed")
        feeder.daemon = True  # a camera read that never returns must not hold the process
        feeder.start()
        try:
            while True:
                try:
                    entry = q.get(timeout=0.1)
                except queue.Empty:
                    if self._stop.is_set():  # even with the feeder stuck in a read
                        return
                    continue
                if entry is _END:
                    return
                if isinstance(entry, BaseException):
                    raise entry
                if self._stop.is_set():
                    return
                fut: Future[FrameJob[T]] = entry
                yield fut.result()
        finally:  # the inputs ended or the consumer stopped: let the feeder go
            self._stop.set()
            feeder.join(timeout=0.5)

    # -- stage 2: infer -----------------------------------------------------------------------

    def _infer(self, job: FrameJob[T]) -> FrameJob[T]:
        if job.error is not None or job.frame is None:
            return job
        try:
            job.outcome = self.engine.infer(job.frame, job.item)
        except ConfigError:
            raise  # e.g. the server refused the API key: no later frame can do better
        except Exception as exc:  # one bad frame never takes the run down
            job.outcome = Outcome(dropped="error", error=f"{type(exc).__name__}: {exc}")
        job.item = None  # the tensor is not needed any more
        return job

    def _warmed(self, jobs: Iterator[FrameJob[T]]) -> Iterator[FrameJob[T]]:
        """The jobs, with one warm-up run on the first frame before any is inferred."""
        for job in jobs:
            if self.warmup and job.frame is not None:
                self.warmup = False
                try:
                    self.engine.warmup(job.frame)
                except Exception as exc:  # the real run of this frame reports it
                    if self._on_warmup_error is not None:
                        self._on_warmup_error(exc)
                self.started_at = time.perf_counter()
            yield job

    def run(self, inputs: Iterable[T]) -> Iterator[FrameJob[T]]:
        """Every input's FrameJob, in input order (see the module docstring)."""
        self.started_at = time.perf_counter()
        jobs = self._warmed(self._prepared(inputs))
        pool = (
            ThreadPoolExecutor(self.runners, thread_name_prefix="infer")
            if self.runners > 1
            else None
        )
        try:
            for _, fut in ordered_map(self._infer, jobs, pool=pool, window=self.runners):
                yield fut.result()
        finally:
            self._stop.set()
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
