"""The resources of one server worker, opened in the app's lifespan and closed after it.

The model session, the batcher (with its inference thread), the decode threads, the stats
outbox and sender, the rate limiter. Handlers receive the `Runtime` by dependency
injection; nothing lives in module globals, so every uvicorn worker has its own.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import msgspec

from vision_core.logging import StructuredLogger
from vision_core.textsafe import safe_text
from vision_core.types import Detection, Name
from vision_server.batcher import Batcher
from vision_server.errors import ServerConfigError
from vision_server.metrics import ServerMetrics
from vision_server.model import LoadedModel, load_model
from vision_server.ratelimit import RateLimiter
from vision_server.settings import ServerSettings
from vision_server.stats import FrameMeta, ServerStats

__all__ = ["Runtime", "open_runtime"]


@dataclass(eq=False)
class Tally:
    """What this worker served: frames per source, detections per class.

    Logged as one `server.tally` line when the worker stops; the run (every worker's
    line summed) puts it into metrics.json, so a fleet's totals can be checked against the
    statistics store.
    """

    frames_by_source: Counter[str] = field(default_factory=Counter)
    detections_per_class: Counter[str] = field(default_factory=Counter)
    events_recorded: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, source_id: str, detections: Iterable[Detection], recorded: bool) -> None:
        with self.lock:
            self.frames_by_source[source_id] += 1
            self.detections_per_class.update(d.class_name for d in detections)
            self.events_recorded += int(recorded)

    def as_dict(self) -> dict[str, Any]:
        with self.lock:
            return {
                "frames": sum(self.frames_by_source.values()),
                "frames_by_source": dict(self.frames_by_source),
                "detections_total": sum(self.detections_per_class.values()),
                "detections_per_class": dict(self.detections_per_class),
                "events_recorded": self.events_recorded,
            }


def sum_tallies(tallies: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The run's totals from each worker's `server.tally` line."""
    frames: Counter[str] = Counter()
    classes: Counter[str] = Counter()
    recorded = 0
    for t in tallies:
        frames.update(t.get("frames_by_source", {}))
        classes.update(t.get("detections_per_class", {}))
        recorded += int(t.get("events_recorded", 0))
    return {
        "frames": sum(frames.values()),
        "frames_by_source": dict(sorted(frames.items())),
        "detections_total": sum(classes.values()),
        "detections_per_class": dict(sorted(classes.items())),
        "events_recorded": recorded,
    }


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
    tally: Tally = field(default_factory=Tally)

    def uptime(self) -> float:
        return time.monotonic() - self.started

    def close(self) -> None:
        """After the batcher has stopped: decode threads, then the stats (flushed)."""
        self.log.info(
            "server.tally",
            f"worker {self.pid} served {sum(self.tally.frames_by_source.values())} frame(s)",
            tally=self.tally.as_dict(),
        )
        self.decode_pool.shutdown(wait=True, cancel_futures=True)
        if self.cv2_threads is not None:
            import cv2

            cv2.setNumThreads(self.cv2_threads)
        if self.stats is not None:
            self.stats.close()


def check_class_names(class_names: dict[int, str]) -> None:
    """The class names go into every StatsEvent this server passes on: they must be what
    vision-stats accepts (1-200 characters, no control or bidi characters), or every event
    would be refused. ServerConfigError naming the class otherwise."""
    for class_id, name in sorted(class_names.items()):
        try:
            msgspec.convert(name, Name)
        except (msgspec.ValidationError, UnicodeError):
            raise ServerConfigError(
                f"the model's class {class_id} is named {safe_text(name)[:80]!r}: class names "
                "must be 1-200 characters without control or bidi characters (they go into "
                "every StatsEvent); set class_map in the config to name the classes"
            ) from None


def open_runtime(
    settings: ServerSettings,
    log: StructuredLogger,
    metrics: ServerMetrics,
    *,
    model: LoadedModel | None = None,
) -> Runtime:
    """Load the model (unless given), open the stats outbox; the batcher is not started."""
    loaded = model or load_model(settings, log)
    check_class_names(dict(loaded.detector.class_names))
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
