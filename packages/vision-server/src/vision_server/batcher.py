"""Dynamic batching across requests, with a bounded queue in front of the model.

Admission: a request takes a `Ticket` BEFORE its body is read and decoded; at most
`queue_size` frames hold one (being decoded or waiting for a batch). When all are taken,
`admit` raises QueueFullError: 503 with a Retry-After estimated from the recent service
time, instead of memory that grows with the load. A frame gives its ticket back when a
batch takes it (or when it fails or its client goes away), so memory is bounded by
`queue_size + max_batch` decoded frames plus the bodies being read.

Batching: one consumer task waits for a free runner, takes the oldest frame, then more
until `max_batch` or until `max_wait_ms` have passed, but it waits only while other
admitted frames are still being decoded (a lone frame on an idle server goes at once).
Each batch runs in one of `runners` inference threads (see `vision_server.model` for why
several single-threaded runs beat one multi-threaded run on CPU), so the event loop never
waits on the model: /health and /metrics answer while it is saturated. While the runners
are busy the next frames queue up, so under load batches fill by themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import numpy as np

from vision_core.types import Detection
from vision_server.errors import InferenceFailedError, QueueFullError

__all__ = ["BatchResult", "Batcher", "Ticket"]

M = TypeVar("M")
InferFn = Callable[[Sequence[np.ndarray]], list[list[Detection]]]


@dataclass(frozen=True, slots=True)
class BatchResult:
    detections: list[Detection]
    queue_ms: float
    inference_ms: float
    batch_size: int
    done_at: float  # time.perf_counter() when the batch finished


class Ticket:
    """A reserved queue slot; give it back once (idempotent)."""

    __slots__ = ("_batcher", "released")

    def __init__(self, batcher: Batcher[Any]) -> None:
        self._batcher = batcher
        self.released = False

    def release(self) -> None:
        if not self.released:
            self.released = True
            self._batcher._pending -= 1


@dataclass(slots=True)
class _Item(Generic[M]):
    image: np.ndarray
    meta: M
    ticket: Ticket
    enqueued: float
    future: asyncio.Future[BatchResult]


class Batcher(Generic[M]):
    """See the module docstring. `on_batch(metas, detections, done_at)` runs in the
    inference thread after each batch (the stats outbox write); its errors are swallowed
    by the caller's own handling, never by a request."""

    def __init__(
        self,
        infer: InferFn,
        *,
        max_batch: int,
        max_wait_ms: float,
        queue_size: int,
        runners: int = 1,
        on_batch: Callable[[list[M], list[list[Detection]], float], None] | None = None,
        on_batch_size: Callable[[int], None] | None = None,
    ) -> None:
        if max_batch < 1 or queue_size < 1 or runners < 1 or max_wait_ms < 0:
            raise ValueError("max_batch, queue_size, runners must be >= 1, max_wait_ms >= 0")
        self._infer = infer
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000.0
        self.queue_size = queue_size
        self._on_batch = on_batch
        self._on_batch_size = on_batch_size
        self.runners = runners
        self._items: deque[_Item[M]] = deque()
        self._arrived: asyncio.Event | None = None
        self._runner_free: asyncio.Event | None = None
        self._pending = 0  # tickets out: frames decoding or queued
        self._running = 0  # batches in the inference threads
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self._batches: set[asyncio.Task[None]] = set()
        self._pool = ThreadPoolExecutor(max_workers=runners, thread_name_prefix="inference")
        self._frame_sec = 0.0  # moving average of inference seconds per frame
        self.batches_total = 0
        self.frames_total = 0

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._arrived = asyncio.Event()
            self._runner_free = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._run(), name="batcher")

    async def close(self, timeout: float = 10.0) -> None:
        """Refuse new frames, let the queued ones finish (up to `timeout`), stop."""
        self._closing = True
        deadline = time.monotonic() + timeout
        while (self._items or self._running) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for task in list(self._batches):  # past the timeout: let the thread finish its batch
            with contextlib.suppress(Exception):
                await task
        for item in self._items:
            if not item.future.done():
                item.future.set_exception(QueueFullError("server is shutting down", retry_after=1))
        self._items.clear()
        self._pool.shutdown(wait=True, cancel_futures=True)

    # -- what handlers call -------------------------------------------------------------------

    @property
    def depth(self) -> int:
        """Frames admitted and not yet in a batch (decoding or queued)."""
        return self._pending

    @property
    def busy(self) -> bool:
        return self._running > 0

    @property
    def running(self) -> int:
        """Batches in the model now (at most `runners`)."""
        return self._running

    def retry_after(self) -> int:
        """Seconds a refused client should wait: the queue's drain time, 1..30."""
        per_frame = (self._frame_sec or 0.05) / self.runners
        drain = (self._pending + self.max_batch) * per_frame
        return int(min(30, max(1, math.ceil(drain))))

    def admit(self) -> Ticket:
        """A slot for one frame, or QueueFullError (503 + Retry-After)."""
        if self._closing:
            raise QueueFullError("server is shutting down; retry on another worker", retry_after=1)
        if self._pending >= self.queue_size:
            raise QueueFullError(
                f"frame queue full ({self.queue_size} frames, deploy.remote.queue_size); "
                "retry after the Retry-After delay",
                retry_after=self.retry_after(),
                extra={"queue_size": self.queue_size},
            )
        self._pending += 1
        return Ticket(self)

    async def submit(self, ticket: Ticket, image: np.ndarray, meta: M) -> BatchResult:
        """Queue a decoded frame under its ticket; its detections when its batch is done."""
        if self._task is None or self._arrived is None:
            raise RuntimeError("Batcher.start() was not called")
        future: asyncio.Future[BatchResult] = asyncio.get_running_loop().create_future()
        self._items.append(_Item(image, meta, ticket, time.perf_counter(), future))
        self._arrived.set()
        return await future

    # -- the consumer -----------------------------------------------------------------------

    async def _run(self) -> None:
        assert self._arrived is not None and self._runner_free is not None
        loop = asyncio.get_running_loop()
        while True:
            while self._running >= self.runners:  # every runner busy: frames keep queueing
                self._runner_free.clear()
                await self._runner_free.wait()
            while not self._items:
                self._arrived.clear()
                await self._arrived.wait()
            batch = [self._items.popleft()]
            deadline = loop.time() + self.max_wait
            while len(batch) < self.max_batch:
                if self._items:
                    batch.append(self._items.popleft())
                    continue
                decoding = self._pending - len(batch)  # admitted, still being decoded
                remaining = deadline - loop.time()
                if decoding <= 0 or remaining <= 0:
                    break
                self._arrived.clear()
                try:
                    await asyncio.wait_for(self._arrived.wait(), remaining)
                except TimeoutError:
                    break
            for item in batch:
                item.ticket.release()
            live = [it for it in batch if not it.future.done()]  # clients still waiting
            if not live:
                continue
            self._running += 1
            task = loop.create_task(self._execute(live))
            self._batches.add(task)
            task.add_done_callback(self._batches.discard)

    async def _execute(self, live: list[_Item[M]]) -> None:
        """One batch in an inference thread; then its frames' futures are resolved."""
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        try:
            detections, done_at = await loop.run_in_executor(self._pool, self._work, live)
        except Exception as exc:
            failure = InferenceFailedError(
                f"inference failed on a batch of {len(live)}: {type(exc).__name__}: {exc}"
            )
            failure.__cause__ = exc  # the log line's traceback shows where it failed
            for it in live:
                if not it.future.done():
                    it.future.set_exception(failure)
            return
        finally:
            self._running -= 1
            assert self._runner_free is not None
            self._runner_free.set()
        infer_ms = (done_at - started) * 1000.0
        per_frame = (done_at - started) / len(live)
        self._frame_sec = 0.8 * self._frame_sec + 0.2 * per_frame if self._frame_sec else per_frame
        self.batches_total += 1
        self.frames_total += len(live)
        if self._on_batch_size is not None:
            self._on_batch_size(len(live))
        for it, dets in zip(live, detections, strict=True):
            if not it.future.done():
                it.future.set_result(
                    BatchResult(
                        detections=dets,
                        queue_ms=(started - it.enqueued) * 1000.0,
                        inference_ms=infer_ms,
                        batch_size=len(live),
                        done_at=done_at,
                    )
                )

    def _work(self, items: list[_Item[M]]) -> tuple[list[list[Detection]], float]:
        """In the inference thread: the model, then the per-batch hook."""
        detections = self._infer([it.image for it in items])
        done_at = time.perf_counter()
        if self._on_batch is not None:
            self._on_batch([it.meta for it in items], detections, done_at)
        return detections, done_at
