"""Controllers, grouped by domain: frames (guarded), health (/metrics is the plugin's).

The frame handler reads its own body, because one path takes two encodings (a JSON
FrameRequest or raw image bytes) and because the queue admission must come BEFORE the
body is read: a request that finds the queue full costs no body, no decode.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, get, post
from litestar.connection import ASGIConnection
from litestar.datastructures import State
from litestar.di import Provide
from litestar.exceptions import TooManyRequestsException
from litestar.handlers.base import BaseRouteHandler
from litestar.openapi.spec import Operation, RequestBody, Schema
from litestar.openapi.spec.enums import OpenAPIFormat, OpenAPIType
from litestar.openapi.spec.media_type import OpenAPIMediaType
from litestar.params import HeaderParameter, QueryParameter, SkipValidation

from vision_core.types import MAX_NAME, FrameRequest, FrameResponse, FrameTiming
from vision_core.web import api_key_guard, error_responses, has_valid_key
from vision_server.errors import NotReadyError
from vision_server.frames import media_kind, prepare
from vision_server.runtime import Runtime
from vision_server.stats import FrameMeta

RAW_ONLY = "raw image bodies only (a header of the same meaning wins)"
_META = 64  # longest frame_index / ts_utc text accepted in a header or the query


class ModelHealth(msgspec.Struct):
    path: str
    sha256: str
    classes: dict[int, str]
    input_size: list[int] | None  # [h, w]; null when the model takes any size
    batching: str  # "dynamic" (up to max_batch frames per run) or "fixed-<n>"
    provider: str
    runners: int  # batches in flight at once
    intra_threads: int  # ONNX Runtime intra-op threads per run (0: its default)


class Health(msgspec.Struct, omit_defaults=True):
    """/health: `status` alone without the key (liveness); with the key (or when no key is
    configured) the model, queue, pid and stats outbox too."""

    status: str
    model: ModelHealth | None = None
    uptime_sec: float | None = None
    pid: int | None = None
    queue_depth: int | None = None
    queue_size: int | None = None
    max_batch: int | None = None
    inference_busy: bool | None = None
    batches_running: int | None = None
    stats: dict[str, Any] | None = None


def runtime_of(state: State) -> Runtime:
    runtime: Runtime | None = state.get("runtime")
    if runtime is None:
        raise NotReadyError(
            "the model is not loaded yet (or the server is stopping)", retry_after=1
        )
    return runtime


# -- guards ---------------------------------------------------------------------------------


def rate_limit_guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """429 with Retry-After when a client (by address) exceeds rate_limit_per_sec."""
    runtime: Runtime | None = connection.app.state.get("runtime")
    if runtime is None or runtime.limiter is None:
        return
    client = connection.client.host if connection.client else "unknown"
    wait = runtime.limiter.acquire(client)
    if wait > 0:
        rate = runtime.settings.remote.rate_limit_per_sec
        raise TooManyRequestsException(
            f"rate limit of {rate:g} requests/s per client (deploy.remote.rate_limit_per_sec) "
            "exceeded",
            headers={"Retry-After": str(runtime.limiter.retry_after(wait))},
        )


# -- OpenAPI: one path, two encodings ---------------------------------------------------------


def _raw_meta(
    where: type[QueryParameter] | type[HeaderParameter], name: str, max_length: int
) -> QueryParameter | HeaderParameter:
    """A metadata value of a raw image body, in the query or a header: optional, bounded."""
    return where(name=name, required=False, description=RAW_ONLY, max_length=max_length)


def _frame_body_doc(data: FrameRequest) -> FrameRequest:
    """Never called: it makes the OpenAPI schema document the JSON body (see FrameOperation)."""
    return data  # pragma: no cover


@dataclass
class FrameOperation(Operation):
    """The JSON FrameRequest body (from `_frame_body_doc`) plus the raw image alternatives."""

    def __post_init__(self) -> None:
        body = self.request_body
        if not isinstance(body, RequestBody):
            return
        binary = OpenAPIMediaType(
            schema=Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.BINARY)
        )
        body.content["image/jpeg"] = binary
        body.content["image/png"] = binary
        body.required = True
        body.description = (
            "A FrameRequest (JSON, the image base64-encoded), or the raw JPEG/PNG bytes with "
            "the metadata in X-Source-Id / X-Frame-Index / X-Ts-Utc headers or in the query."
        )


_ERRORS = error_responses(
    400, 401, 413, 415, 422, 429, 503,
    s400="empty body, or not JSON",
    s413="body above deploy.remote.max_body_mb, or image above max_image_pixels",
    s415="Content-Type is not application/json, image/jpeg or image/png",
    s422="a field is missing, unknown or out of bounds (extra.field names it); or the image "
    "is not a whole JPEG/PNG",
    s503="frame queue full, or the model is not loaded yet (Retry-After)",
)  # fmt: skip


class FrameController(Controller):
    path = "/api/v1"
    tags = ("frames",)
    guards = (api_key_guard, rate_limit_guard)
    security = ({"ApiKey": []},)

    @post(
        "/frame",
        status_code=200,
        operation_class=FrameOperation,
        dependencies={"frame_request": Provide(_frame_body_doc, sync_to_thread=False)},
        responses=_ERRORS,
        summary="Detect objects on one frame",
    )
    async def frame(
        self,
        request: Request[Any, Any, Any],
        runtime: SkipValidation[Runtime],  # opened in the lifespan, see app.py
        source_id: Annotated[str | None, _raw_meta(QueryParameter, "source_id", MAX_NAME)] = None,
        frame_index: Annotated[str | None, _raw_meta(QueryParameter, "frame_index", _META)] = None,
        ts_utc: Annotated[str | None, _raw_meta(QueryParameter, "ts_utc", _META)] = None,
        h_source_id: Annotated[
            str | None, _raw_meta(HeaderParameter, "X-Source-Id", MAX_NAME)
        ] = None,
        h_frame_index: Annotated[
            str | None, _raw_meta(HeaderParameter, "X-Frame-Index", _META)
        ] = None,
        h_ts_utc: Annotated[str | None, _raw_meta(HeaderParameter, "X-Ts-Utc", _META)] = None,
    ) -> FrameResponse:
        """Detections (in pixels of the frame sent) and the time spent per stage."""
        t0 = time.perf_counter()
        kind = media_kind(request.headers.get("content-type"))
        ticket = runtime.batcher.admit()  # 503 before reading a byte when the queue is full
        try:
            body = await request.body()
            raw_meta = {
                "source_id": h_source_id if h_source_id is not None else source_id,
                "frame_index": h_frame_index if h_frame_index is not None else frame_index,
                "ts_utc": h_ts_utc if h_ts_utc is not None else ts_utc,
            }
            loop = asyncio.get_running_loop()
            frame = await loop.run_in_executor(
                runtime.decode_pool,
                prepare,
                kind,
                body,
                raw_meta,
                runtime.settings.remote.max_image_pixels,
                runtime.settings.max_ts_skew,
            )
            meta = FrameMeta(frame.source_id, frame.frame_index, frame.ts_utc, t0)
            result = await runtime.batcher.submit(ticket, frame.image, meta)
        finally:
            ticket.release()
        total_ms = (time.perf_counter() - t0) * 1000.0
        m = runtime.metrics
        m.frames.inc()
        m.stage.labels(stage="decode").observe(frame.decode_ms / 1000.0)
        m.stage.labels(stage="queue").observe(result.queue_ms / 1000.0)
        m.stage.labels(stage="inference").observe(result.inference_ms / 1000.0)
        m.stage.labels(stage="total").observe(total_ms / 1000.0)
        h, w = frame.image.shape[:2]
        runtime.tally.add(frame.source_id, result.detections, runtime.stats is not None)
        return FrameResponse(
            source_id=frame.source_id,
            frame_index=frame.frame_index,
            width=int(w),
            height=int(h),
            detections=result.detections,
            timing=FrameTiming(
                decode_ms=round(frame.decode_ms, 3),
                queue_ms=round(result.queue_ms, 3),
                inference_ms=round(result.inference_ms, 3),
                total_ms=round(total_ms, 3),
            ),
            stats_recorded=runtime.stats is not None,
        )


class HealthController(Controller):
    path = "/health"
    tags = ("operations",)

    @get(
        "/",
        summary="Liveness; with the X-API-Key header also the model, queue and stats state",
        description=(
            "200 only when the model is loaded. Without the key: `{status}`. With it (or "
            "when no key is configured): the model, queue, pid and stats outbox."
        ),
        responses=error_responses(503, s503="the model is not loaded yet (Retry-After)"),
        sync_to_thread=False,
    )
    def health(self, request: Request[Any, Any, Any], state: State) -> Health:
        runtime = runtime_of(state)
        if not has_valid_key(request):
            return Health("ok")
        model = runtime.model
        det = model.detector
        return Health(
            status="ok",
            model=ModelHealth(
                path=model.path,
                sha256=model.sha256,
                classes=dict(det.class_names),
                input_size=list(det.input_size) if det.input_size else None,
                batching=model.batching,
                provider=model.provider,
                runners=model.runners,
                intra_threads=model.intra_threads,
            ),
            uptime_sec=round(runtime.uptime(), 3),
            pid=runtime.pid,
            queue_depth=runtime.batcher.depth,
            queue_size=runtime.batcher.queue_size,
            max_batch=runtime.batcher.max_batch,
            inference_busy=runtime.batcher.busy,
            batches_running=runtime.batcher.running,
            stats=runtime.stats.snapshot() if runtime.stats is not None else None,
        )
