"""The resources of one server worker, opened in the app's lifespan and closed after it.

The model session, the batcher (with its inference thread), the decode threads, the stats
outbox and sender, the rate limiter. Handlers receive the `Runtime` by dependency
injection; nothing lives in module globals, so every uvicorn worker has its own.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from vision_core.logging import StructuredLogger
from vision_server.batcher import Batcher
from vision_server.metrics import ServerMetrics
from vision_server.model import LoadedModel, load_model
from vision_server.ratelimit import RateLimiter
from vision_server.settings import ServerSettings
from vision_server.stats import FrameMeta, ServerStats

__all__ = ["Runtime", "open_runtime"]


@dataclass(eq=False)
class Runtime:
    settings: ServerSettings
    log: StructuredLogger
    model: LoadedModel
    batcher: Batcher[FrameMeta]
    decode_pool: ThreadPoolExecutor
    metrics: ServerMetrics
    stats: ServerStats | None = None
    limiter: RateLimiter | None = None
    pid: int = field(default_factory=os.getpid)
    started: float = field(default_factory=time.monotonic)
    cv2_threads: int | None = None  # OpenCV's thread count before the runtime set it to 1

    def uptime(self) -> float:
        return time.monotonic() - self.started

    def close(self) -> None:
        """After the batcher has stopped: decode threads, then the stats (flushed)."""
        self.decode_pool.shutdown(wait=True, cancel_futures=True)
        if self.cv2_threads is not None:
            import cv2

            cv2.setNumThreads(self.cv2_threads)
        if self.stats is not None:
            self.stats.close()


def open_runtime(
    settings: ServerSettings,
    log: StructuredLogger,
    metrics: ServerMetrics,
    *,
    model: LoadedModel | None = None,
) -> Runtime:
    """Load the model (unless given), open the stats outbox; the batcher is not started."""
    loaded = model or load_model(settings, log)
    cv2_threads: int | None = None
    if loaded.runners > 1:
        import cv2

        cv2_threads = cv2.getNumThreads()
        cv2.setNumThreads(1)  # the runners are the parallelism (see vision_server.model)
    remote = settings.remote
    stats = ServerStats(settings, log, loaded.name) if remote.record_stats else None
    try:
        batcher: Batcher[FrameMeta] = Batcher(
            loaded.detector.predict_batch,
            max_batch=remote.max_batch,
            max_wait_ms=remote.max_wait_ms,
            queue_size=remote.queue_size,
            runners=loaded.runners,
            on_batch=stats.record if stats is not None else None,
            on_batch_size=lambda n: metrics.batch_size.observe(n),
        )
    except BaseException:
        if stats is not None:
            stats.close()
        raise
    runtime = Runtime(
        settings=settings,
        log=log,
        model=loaded,
        batcher=batcher,
        decode_pool=ThreadPoolExecutor(
            max_workers=min(4, os.cpu_count() or 1), thread_name_prefix="decode"
        ),
        metrics=metrics,
        stats=stats,
        limiter=RateLimiter(remote.rate_limit_per_sec) if remote.rate_limit_per_sec > 0 else None,
        cv2_threads=cv2_threads,
    )
    metrics.bind(runtime)
    return runtime
