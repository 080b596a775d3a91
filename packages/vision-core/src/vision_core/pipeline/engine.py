"""Where a frame's detections come from: an `Engine` splits the work on a frame in two.

- `prepare(frame)`: CPU work that needs no model (local: letterbox + tensor; stream and
  llm: the JPEG encode). Runs on the pipeline's prepare thread(s), ahead of the model.
- `infer(frame, item)`: the model call (local: session.run + postprocessing; stream: the
  HTTP round trip; llm: the vision LLM call), returning an `Outcome`. Runs on the thread
  that consumes the pipeline when it has one runner, on a pool of `runners` threads
  otherwise (only engines that declare `concurrent = True` get more than one).

An engine never raises for one bad frame: a frame it cannot process comes back as an
Outcome with `dropped` set to the reason. It raises only for what no later frame can fix
(a ConfigError, e.g. a server that refuses the API key), which ends the run.

Engines here: `LocalEngine` (a vision-core detector, in this process) and `LLMEngine` (an
OpenAI-compatible vision LLM). vision-edge adds its `StreamEngine` (frames to vision-server).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from vision_core.errors import VisionError
from vision_core.media.codec import encode_jpeg, image_mime
from vision_core.media.frame import Frame
from vision_core.types import Detection

if TYPE_CHECKING:
    from vision_core.infer import Detector, Prepared
    from vision_core.llm import LLMDetector

__all__ = ["Engine", "LLMEngine", "LocalEngine", "Outcome", "Where"]

Where = Literal["local", "stream", "llm"]


@dataclass(slots=True)
class Outcome:
    """What happened to one frame."""

    detections: list[Detection] = field(default_factory=list)
    where: Where = "local"  # where inference ran (the StatsEvent's mode)
    infer_ms: float = 0.0
    record: bool = True  # False: another process (the server) recorded this frame's event
    dropped: str | None = None  # the reason, when the frame got no detections at all
    fallback: str | None = None  # stream mode: why this frame ran locally instead
    error: str | None = None  # detail of a drop or a fallback, for the log


class Engine:
    """The interface (see the module docstring); subclasses override what they do."""

    name: str = "engine"
    model: str = ""  # what runs the frames: a model path, an endpoint, an LLM name
    concurrent = False  # True: infer is safe on several threads at once

    def prepare(self, frame: Frame) -> Any:
        raise NotImplementedError

    def infer(self, frame: Frame, item: Any) -> Outcome:
        raise NotImplementedError

    @property
    def event_model(self) -> str:
        """The model named in the events of the frames this engine runs itself."""
        return self.model.rsplit("/", 1)[-1]

    def warmup(self, frame: Frame) -> None:
        """Run once before the clock starts (a model's first run allocates its memory)."""
        return None

    def snapshot(self) -> dict[str, Any]:
        """The engine's own figures, for metrics.json."""
        return {}

    def close(self) -> None:
        return None


class LocalEngine(Engine):
    """A vision-core detector (YOLO or Faster R-CNN, ONNX), in this process."""

    name = "local"
    concurrent = True  # ONNX Runtime allows concurrent runs of one session

    def __init__(self, detector: Detector) -> None:
        self.detector = detector
        self.model = detector.model_path

    def prepare(self, frame: Frame) -> Prepared:
        return self.detector.prepare(frame.image)

    def infer(self, frame: Frame, item: Any) -> Outcome:
        t0 = time.perf_counter()
        dets = self.detector.detect_prepared(item)
        return Outcome(dets, "local", (time.perf_counter() - t0) * 1000.0)

    def warmup(self, frame: Frame) -> None:
        self.detector.detect_prepared(self.detector.prepare(frame.image))


class LLMEngine(Engine):
    """Frames to an OpenAI-compatible vision LLM (vision-core's client: bucket, retries,
    cache). Thread-safe: with several runners, calls go out in parallel within the bucket.

    `sample=True` (a live camera): a frame is sent only when the request budget
    (`autolabel.llm.max_requests_per_sec`) allows one now; the others are dropped as
    `llm_sampled` (a camera does not wait). Otherwise (files) every frame waits for the
    bucket. A frame whose call fails after the retries, or whose answer is not valid JSON,
    is dropped as `llm_failed`; the run goes on. An image file's own bytes (JPEG, PNG) are
    sent as they are; anything else is encoded as JPEG at `quality`.
    """

    name = "llm"
    concurrent = True

    def __init__(
        self,
        detector: LLMDetector,
        *,
        quality: int = 90,
        sample: bool = False,
        max_requests_per_sec: float = 0.0,
    ) -> None:
        self.detector = detector
        self.quality = quality
        self.sample = sample and max_requests_per_sec > 0
        self.period = 1.0 / max_requests_per_sec if max_requests_per_sec > 0 else 0.0
        self.model = detector.settings.model
        self._next_at = 0.0
        self._lock = threading.Lock()
        self.failed = 0

    def prepare(self, frame: Frame) -> tuple[bytes, str] | None:
        if self.sample:
            now = time.monotonic()
            if now < self._next_at:
                return None  # sampled out before paying for the encode
            self._next_at = now + self.period
        mime = image_mime(frame.data)
        if frame.data is not None and mime is not None:
            return frame.data, mime  # an image file: sent as it is, no re-encode
        return encode_jpeg(frame.image, self.quality), "image/jpeg"

    def infer(self, frame: Frame, item: Any) -> Outcome:
        if item is None:
            return Outcome(where="llm", dropped="llm_sampled")
        data, mime = item
        h, w = frame.image.shape[:2]
        t0 = time.perf_counter()
        try:
            parsed = self.detector.detect_encoded(data, mime, w, h)
        except VisionError as exc:
            with self._lock:
                self.failed += 1
            ms = (time.perf_counter() - t0) * 1000.0
            return Outcome(where="llm", infer_ms=ms, dropped="llm_failed", error=str(exc))
        return Outcome(parsed.detections, "llm", (time.perf_counter() - t0) * 1000.0)

    def snapshot(self) -> dict[str, Any]:
        stats = self.detector.stats.as_dict()
        return {"model": self.model, "failed_frames": self.failed, **stats}

    def close(self) -> None:
        self.detector.close()
