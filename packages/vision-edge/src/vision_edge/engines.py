"""Where a frame's detections come from: the local ONNX model, the server, or the LLM.

Each engine splits a frame's work in two, so the runtime can do the first half of frame
N+1 on the prefetch thread while frame N is in the second half on the main thread:

- `prepare(frame)`: CPU work that needs no model (local: letterbox + tensor; stream and
  llm: the JPEG encode).
- `infer(item)`: the model call (local: session.run + NMS; stream: the HTTP round trip;
  llm: the vision LLM call), returning an `Outcome`.

An engine never raises for one bad frame: a frame it cannot process comes back as an
Outcome with `dropped` set to the reason. It raises only for what no later frame can fix
(the server refuses the API key), which ends the run with a clear error.
"""

from __future__ import annotations

import base64
import http.client
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

import cv2
import msgspec
import numpy as np

from vision_core.errors import ConfigError, VisionError
from vision_core.logging import StructuredLogger
from vision_core.media import Frame
from vision_core.stats_sender import parse_retry_after
from vision_core.types import Detection, FrameRequest, FrameResponse, to_json

if TYPE_CHECKING:
    from vision_core.config.schema import EdgeSection
    from vision_core.infer import Detector, Prepared
    from vision_core.llm import LLMDetector

__all__ = ["Engine", "LLMEngine", "LocalEngine", "Outcome", "StreamEngine"]

Where = Literal["local", "stream", "llm"]
_response_decoder = msgspec.json.Decoder(FrameResponse)


@dataclass(slots=True)
class Outcome:
    """What happened to one frame."""

    detections: list[Detection] = field(default_factory=list)
    where: Where = "local"  # where inference ran (the StatsEvent's mode)
    infer_ms: float = 0.0
    record: bool = True  # False: the server recorded this frame's event itself
    dropped: str | None = None  # the reason, when the frame got no detections at all
    fallback: str | None = None  # stream mode: why this frame ran locally instead
    error: str | None = None  # detail of a drop or a fallback, for the log


class Engine:
    """The interface (see the module docstring)."""

    name: str = "engine"
    model: str = ""
    concurrent = False  # True: infer is safe on several threads at once

    def prepare(self, frame: Frame) -> Any:
        raise NotImplementedError

    def infer(self, frame: Frame, item: Any) -> Outcome:
        raise NotImplementedError

    @property
    def event_model(self) -> str:
        """The model named in the events of frames this edge ran itself."""
        return self.model.rsplit("/", 1)[-1]

    def warmup(self, frame: Frame) -> None:
        """Run once before the clock starts (a model's first run allocates its memory)."""
        return None

    def snapshot(self) -> dict[str, Any]:
        return {}

    def close(self) -> None:
        return None


class LocalEngine(Engine):
    """The vision-core ONNX adapter, in this process."""

    name = "local"
    concurrent = True  # infer may run on several threads at once (ONNX Runtime allows it)

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


def encode_jpeg(image: np.ndarray, quality: int) -> bytes:
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise VisionError(f"cannot encode a {image.shape} frame as JPEG")
    return bytes(buf)


def _sendable_as_is(data: bytes | None) -> bool:
    """An image file the server takes unchanged: a JPEG, or a PNG without alpha."""
    if not data:
        return False
    if data.startswith(b"\xff\xd8"):
        return True
    # PNG colour types 4 and 6 carry alpha, which the server refuses (it is not ours to
    # composite): those are re-encoded from the decoded (alpha-dropped) pixels instead
    return data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 25 and data[25] not in (4, 6)


class StreamEngine(Engine):
    """Frames to vision-server (`POST deploy.edge.stream_endpoint`), JSON with base64.

    One keep-alive connection; a failed frame (unreachable, timeout, 5xx, 429/503, a 4xx
    for this frame) goes to `fallback` (the local engine, `on_stream_failure = "local"`)
    or is dropped (`"skip"`), with the reason counted. After a failure the server is left
    alone for a capped, doubling pause (or its Retry-After), so a dead server costs a
    frame no timeout: frames go straight to the fallback until the next probe. A 401/403
    ends the run: no later frame can succeed with that key.
    """

    name = "stream"

    def __init__(
        self,
        edge: EdgeSection,
        api_key: str,
        *,
        fallback: LocalEngine | None,
        logger: StructuredLogger,
        max_pause_sec: float = 10.0,
    ) -> None:
        parts = urlsplit(edge.stream_endpoint)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(
                f"deploy.edge.stream_endpoint: must be an http(s):// URL, got "
                f"{edge.stream_endpoint!r}"
            )
        self.endpoint = edge.stream_endpoint
        self._https = parts.scheme == "https"
        self._host, self._port = parts.hostname, parts.port
        self._path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._headers = {"Content-Type": "application/json", "Connection": "keep-alive"}
        if api_key:
            self._headers["X-API-Key"] = api_key
        self.timeout = edge.timeout_sec
        self.quality = edge.jpeg_quality
        self.source_id = edge.device_id
        self.fallback = fallback
        self.log = logger
        self.max_pause_sec = max_pause_sec
        self.model = edge.stream_endpoint
        self._conn: http.client.HTTPConnection | None = None
        self._pause = 0.0
        self._down_until = 0.0
        self.sent = 0
        self.answered = 0
        self.failures: dict[str, int] = {}
        self.bytes_sent = 0

    # -- the two halves ----------------------------------------------------------------

    def prepare(self, frame: Frame) -> tuple[bytes, Prepared | None]:
        data = frame.data if _sendable_as_is(frame.data) else None
        body = data or encode_jpeg(frame.image, self.quality)
        req = FrameRequest(
            image_b64=base64.b64encode(body).decode("ascii"),
            source_id=self.source_id,
            frame_index=frame.index,
            # the capture time: the server's event id derives from it, so a frame sent
            # twice (an answer lost on the way back) is counted once
            ts_utc=datetime.fromtimestamp(frame.ts, UTC),
        )
        # the fallback's preprocessing is done only once the server has failed recently,
        # when the next frames are likely to need it
        local = None
        if self.fallback is not None and time.monotonic() < self._down_until:
            local = self.fallback.prepare(frame)
        return to_json(req), local

    def infer(self, frame: Frame, item: Any) -> Outcome:
        body, local = item
        if time.monotonic() < self._down_until:
            return self._failed(frame, local, "server_down", "waiting before the next try")
        t0 = time.perf_counter()
        try:
            status, headers, payload = self._post(body)
        except TimeoutError as exc:
            return self._failure(frame, local, "timeout", f"no answer in {self.timeout}s ({exc})")
        except (OSError, http.client.HTTPException) as exc:
            return self._failure(frame, local, "unreachable", f"{type(exc).__name__}: {exc}")
        ms = (time.perf_counter() - t0) * 1000.0
        if status == 200:
            try:
                resp = _response_decoder.decode(payload)
            except msgspec.DecodeError as exc:
                return self._failure(frame, local, "bad_response", f"answer not understood: {exc}")
            self.answered += 1
            self._pause = 0.0
            self._down_until = 0.0
            return Outcome(resp.detections, "stream", ms, record=not resp.stats_recorded)
        detail = _detail(payload)
        if status in (401, 403):
            raise ConfigError(
                f"deploy.edge.stream_api_key_env: the server at {self.endpoint} refused the "
                f"API key with {status} ({detail}); check the variable it names"
            )
        if status in (429, 503) or status >= 500:
            retry_after = parse_retry_after(headers.get("retry-after"))
            kind = "busy" if status in (429, 503) else "server_error"
            return self._failure(frame, local, kind, f"{status}: {detail}", retry_after)
        # another 4xx: this frame was refused (too big, unreadable); the server is fine
        return self._failed(frame, local, "rejected", f"{status}: {detail}")

    # -- failures ------------------------------------------------------------------------

    def _failure(
        self,
        frame: Frame,
        local: Prepared | None,
        kind: str,
        detail: str,
        retry_after: float | None = None,
    ) -> Outcome:
        """A failure of the server or the link: pause streaming, then handle the frame."""
        self._close()
        self._pause = min(self.max_pause_sec, max(0.5, self._pause * 2))
        pause = retry_after if retry_after is not None else self._pause
        self._down_until = time.monotonic() + min(pause, self.max_pause_sec)
        if self.failures.get(kind, 0) == 0 or self._pause >= self.max_pause_sec:
            self.log.warn(
                "edge.stream_failed",
                f"stream to {self.endpoint} failed ({kind}: {detail}); "
                f"next try in {pause:.1f}s, frames "
                + ("run locally" if self.fallback else "are skipped")
                + " meanwhile",
                kind=kind,
                frame_index=frame.index,
            )
        return self._failed(frame, local, kind, detail)

    def _failed(self, frame: Frame, local: Prepared | None, kind: str, detail: str) -> Outcome:
        self.failures[kind] = self.failures.get(kind, 0) + 1
        reason = f"stream_{kind}"
        if self.fallback is None:
            return Outcome(where="stream", dropped=reason, error=detail)
        item = local if local is not None else self.fallback.prepare(frame)
        out = self.fallback.infer(frame, item)
        out.fallback, out.error = reason, detail
        return out

    # -- HTTP ------------------------------------------------------------------------------

    def _connect(self) -> http.client.HTTPConnection:
        if self._conn is None:
            cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            self._conn = cls(self._host, self._port, timeout=self.timeout)
        return self._conn

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _post(self, body: bytes) -> tuple[int, dict[str, str], bytes]:
        self.sent += 1
        self.bytes_sent += len(body)
        for attempt in (1, 2):
            conn = self._connect()
            try:
                conn.request("POST", self._path, body=body, headers=self._headers)
                resp = conn.getresponse()
                payload = resp.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                # a keep-alive connection the server closed while idle: one fresh try
                self._close()
                if attempt == 2:
                    raise
                continue
            headers = {k.lower(): v for k, v in resp.getheaders()}
            if headers.get("connection", "").lower() == "close":
                self._close()
            return resp.status, headers, payload
        raise AssertionError("unreachable")  # pragma: no cover

    @property
    def event_model(self) -> str:
        # the server records the frames it answers; the edge only its fallback's frames
        return self.fallback.event_model if self.fallback is not None else ""

    def warmup(self, frame: Frame) -> None:
        if self.fallback is not None:
            self.fallback.warmup(frame)

    def snapshot(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint,
            "requests": self.sent,
            "answered": self.answered,
            "failures": dict(self.failures),
            "mb_sent": round(self.bytes_sent / 1e6, 3),
        }

    def close(self) -> None:
        self._close()


def _detail(payload: bytes) -> str:
    try:
        obj = msgspec.json.decode(payload)
    except msgspec.DecodeError:
        return payload[:200].decode("utf-8", "replace") or "no body"
    if isinstance(obj, dict) and "detail" in obj:
        return str(obj["detail"])[:300]
    return str(obj)[:300]


class LLMEngine(Engine):
    """Frames to the OpenAI-compatible vision LLM (vision-core's client: bucket, retries).

    On a live camera, frames are sampled: a frame is sent only when the QPS budget
    (`autolabel.llm.qps_limit`) allows one now, the others are dropped as `llm_sampled`
    (a camera does not wait). Files (video, images) wait for the bucket: every frame is
    asked. A frame whose call fails after the retries, or whose answer is not valid JSON,
    is dropped as `llm_failed`; the run goes on.
    """

    name = "llm"

    def __init__(
        self, detector: LLMDetector, *, quality: int, sample: bool, qps_limit: float
    ) -> None:
        self.detector = detector
        self.quality = quality
        self.sample = sample
        self.period = 1.0 / qps_limit
        self.model = detector.settings.model
        self._next_at = 0.0
        self.failed = 0

    def prepare(self, frame: Frame) -> tuple[bytes, str] | None:
        if self.sample:
            now = time.monotonic()
            if now < self._next_at:
                return None  # sampled out before paying for the encode
            self._next_at = now + self.period
        data = frame.data
        if data is not None and data.startswith(b"\xff\xd8"):
            return data, "image/jpeg"  # an image file: sent as it is, no re-encode
        if data is not None and data.startswith(b"\x89PNG\r\n\x1a\n"):
            return data, "image/png"
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
            self.failed += 1
            ms = (time.perf_counter() - t0) * 1000.0
            return Outcome(where="llm", infer_ms=ms, dropped="llm_failed", error=str(exc))
        return Outcome(parsed.detections, "llm", (time.perf_counter() - t0) * 1000.0)

    def snapshot(self) -> dict[str, Any]:
        stats = self.detector.stats.as_dict()
        return {"model": self.model, "failed_frames": self.failed, **stats}

    def close(self) -> None:
        self.detector.close()
