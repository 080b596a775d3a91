"""`VisionWebPlugin`: what both vision services install into their Litestar app.

- an outer ASGI layer around the whole app (404s included): a request id (the client's
  `X-Request-Id` when it is short and plain, else a new one) echoed in `X-Request-Id`;
  431 when the request line and headers exceed `max_header_bytes` in all; the request
  metrics (`route` is the route template, `<unmatched>` for a path no route has, so random
  paths cannot grow the label set);
- exception handlers that answer every error with `ErrorBody`: a 4xx says what was wrong,
  a 5xx says only what kind of fault it was and is logged with its traceback and request
  id (load shedding, a 5xx whose error sets `expose_detail`, is logged as a warning at most
  every 10 s per kind, since a flood would otherwise bury the log);
- `GET /metrics` (Prometheus text) and the API key the guard compares with.

An error raised on purpose says how it maps, by attributes: `status_code`, `detail` (else
`str(exc)`), `extra`, `headers`, `kind` (the errors_total label), `expose_detail` (a 5xx
whose detail is safe to show) and `public_detail` (a fixed text for a 5xx).
"""

from __future__ import annotations

import re
import threading
import time
import traceback
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

import msgspec
from litestar import Litestar, Request, Response, get
from litestar.config.app import AppConfig
from litestar.exceptions import HTTPException
from litestar.openapi.spec import Schema
from litestar.plugins import InitPluginProtocol
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from vision_core.logging import StructuredLogger
from vision_core.secrets import Secret, scrub
from vision_core.web.errors import GENERIC_5XX, ErrorBody, error_responses
from vision_core.web.metrics import PROMETHEUS_MEDIA_TYPE, WebMetrics

__all__ = ["MAX_HEADER_BYTES", "VisionWebPlugin", "plugin_of", "request_id_of"]

MAX_HEADER_BYTES = 16 * 1024
REQUEST_ID_HEADER = "X-Request-Id"
_CLIENT_ID = re.compile(r"^[A-Za-z0-9._:-]{8,64}$")
_UNMATCHED = "<unmatched>"
_WARN_EVERY_SEC = 10.0
_HTTP_KINDS = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
    415: "unsupported_media_type",
    422: "invalid_field",
    429: "rate_limited",
    431: "headers_too_large",
    500: "internal",
    503: "unavailable",
}
_encoder = msgspec.json.Encoder()


def plugin_of(app: Litestar) -> VisionWebPlugin:
    return app.plugins.get(VisionWebPlugin)


def request_id_of(scope: Mapping[str, Any]) -> str:
    state = scope.get("state") or {}
    return str(state.get("request_id", ""))


def _header_bytes(scope: Scope) -> int:
    size = len(scope.get("raw_path") or b"") + len(scope.get("query_string") or b"")
    for name, value in scope.get("headers", ()):
        size += len(name) + len(value) + 4
    return size


@dataclass
class _Failure:
    status: int
    detail: str
    extra: dict[str, Any] | None
    headers: dict[str, str]
    kind: str
    fault: bool  # a 5xx to log with its traceback


@dataclass(eq=False)
class VisionWebPlugin(InitPluginProtocol):
    """Install with `Litestar(plugins=[VisionWebPlugin(...)])`.

    service: the metric prefix and log event prefix (`vision_stats`, `vision_server`).
    api_key: what `api_key_guard` compares X-API-Key with (empty: anonymous allowed).
    details: fixed texts (and extra) for HTTP statuses, e.g. 413 naming the config key.
    """

    service: str
    api_key: Secret
    log: StructuredLogger
    max_header_bytes: int = MAX_HEADER_BYTES
    details: dict[int, tuple[str, dict[str, Any] | None]] = field(default_factory=dict)
    #: structs whose msgspec `extra_json_schema` (contentEncoding, ...) the OpenAPI document
    #: should carry: Litestar drops it when it converts a msgspec Meta
    schema_structs: tuple[type, ...] = ()
    metrics: WebMetrics = field(init=False)
    _warned: dict[str, tuple[float, int]] = field(default_factory=dict, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def __post_init__(self) -> None:
        self.metrics = WebMetrics(self.service)

    # -- Litestar hooks ---------------------------------------------------------------------

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        app_config.exception_handlers = {
            **app_config.exception_handlers,
            HTTPException: self._handle,
            Exception: self._handle,
        }
        app_config.route_handlers = [*app_config.route_handlers, self._metrics_handler()]
        app_config.on_startup = [*app_config.on_startup, self._wrap_app]
        return app_config

    def _wrap_app(self, app: Litestar) -> None:
        """Put the outer layer around the router (app-level middleware runs per route only,
        so a 404 would miss it)."""
        if not getattr(app.asgi_handler, "_vision_outer", False):
            app.asgi_handler = self._outer(app.asgi_handler)
        self._schema_extras(app)

    def _schema_extras(self, app: Litestar) -> None:
        if not self.schema_structs or app.openapi_config is None:
            return
        components = app.openapi_schema.components.schemas or {}
        for struct in self.schema_structs:
            target = components.get(struct.__name__)
            _, defs = msgspec.json.schema_components([struct])
            props = defs.get(struct.__name__, {}).get("properties", {})
            if target is None or not target.properties:
                continue
            for name, prop in props.items():
                field_schema = target.properties.get(name)
                if not isinstance(field_schema, Schema):
                    continue
                if "contentEncoding" in prop:
                    field_schema.content_encoding = prop["contentEncoding"]
                if "contentMediaType" in prop:
                    field_schema.content_media_type = prop["contentMediaType"]

    def _metrics_handler(self) -> Any:
        plugin = self

        @get(
            "/metrics",
            summary="Prometheus text exposition",
            media_type=PROMETHEUS_MEDIA_TYPE,
            tags=["operations"],
            sync_to_thread=False,
            responses=error_responses(),
            name=f"{self.service}-metrics",
        )
        def metrics() -> Response[bytes]:
            return Response(plugin.metrics.render(), media_type=PROMETHEUS_MEDIA_TYPE)

        return metrics

    # -- the outer ASGI layer ---------------------------------------------------------------

    def _outer(self, app: ASGIApp) -> ASGIApp:
        async def outer(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            start = time.perf_counter()
            given = next((v for k, v in scope["headers"] if k == b"x-request-id"), b"")
            rid = given.decode("latin-1")
            if not _CLIENT_ID.match(rid):
                rid = uuid.uuid4().hex
            scope.setdefault("state", {})["request_id"] = rid
            status = 500
            rid_header = (b"x-request-id", rid.encode())

            async def send_with_id(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = int(message["status"])
                    headers = [*message.get("headers", ()), rid_header]
                    message = {**message, "headers": headers}
                await send(message)

            try:
                if _header_bytes(scope) > self.max_header_bytes:
                    await self._send_431(rid, send_with_id)
                else:
                    await app(scope, receive, send_with_id)
            finally:
                route = str(scope.get("path_template") or _UNMATCHED)
                if route.startswith("/schema"):
                    route = "/schema"
                method = str(scope.get("method", ""))
                self.metrics.observe_request(route, method, status, time.perf_counter() - start)

        outer._vision_outer = True  # type: ignore[attr-defined]
        return outer

    async def _send_431(self, rid: str, send: Send) -> None:
        self.metrics.error("headers_too_large")
        detail = (
            f"request headers larger than {self.max_header_bytes // 1024} KiB in all: send "
            "fewer or shorter headers"
        )
        body = _encoder.encode(ErrorBody(431, detail, rid, {"limit_bytes": self.max_header_bytes}))
        await send(
            {
                "type": "http.response.start",
                "status": 431,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body, "more_body": False})

    # -- errors -----------------------------------------------------------------------------

    def _classify(self, exc: Exception) -> _Failure:
        if isinstance(exc, HTTPException):
            status = int(exc.status_code)
            detail = str(exc.detail or HTTPStatus(status).phrase)
            raw_extra: Any = exc.extra
            headers = dict(exc.headers or {})
            kind = _HTTP_KINDS.get(status, f"http_{status}")
            expose = status < 500
            public = None
        elif hasattr(exc, "status_code") and isinstance(exc.status_code, int):
            status = exc.status_code
            detail = str(getattr(exc, "detail", None) or exc)
            raw_extra = getattr(exc, "extra", None)
            headers = dict(getattr(exc, "headers", None) or {})
            kind = str(getattr(exc, "kind", None) or _HTTP_KINDS.get(status, f"http_{status}"))
            expose = status < 500 or bool(getattr(exc, "expose_detail", False))
            public = getattr(exc, "public_detail", None)
        else:
            status, detail, raw_extra, headers, kind = 500, "", None, {}, "internal"
            expose, public = False, None
        if isinstance(exc, HTTPException) and status in self.details:  # Litestar's own
            detail, fixed_extra = self.details[status]
            raw_extra = fixed_extra
        if isinstance(raw_extra, list):
            raw_extra = {"errors": raw_extra}
        extra = dict(raw_extra) if isinstance(raw_extra, Mapping) and raw_extra else None
        if status >= 500 and not expose:
            return _Failure(
                status, public or GENERIC_5XX.get(status, GENERIC_5XX[500]), None, headers, kind,
                True,
            )  # fmt: skip
        return _Failure(status, scrub(detail), extra, headers, kind, False)

    def _handle(self, request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
        rid = request_id_of(request.scope) or uuid.uuid4().hex
        failure = self._classify(exc)
        self.metrics.error(failure.kind)
        if failure.fault:
            self.log.error(
                f"{self.service}.error",
                f"{failure.status} on {request.method} {request.url.path} (request {rid}): "
                f"{type(exc).__name__}: {scrub(str(exc))}",
                request_id=rid,
                status=failure.status,
                traceback=scrub("".join(traceback.format_exception(exc))),
            )
        elif failure.status >= 500:
            self._warn_shed(failure, request, rid)
        body = ErrorBody(failure.status, failure.detail, rid, failure.extra)
        return Response(
            _encoder.encode(body),
            status_code=failure.status,
            headers=failure.headers,
            media_type="application/json",
        )

    def _warn_shed(self, failure: _Failure, request: Request[Any, Any, Any], rid: str) -> None:
        now = time.monotonic()
        with self._lock:
            last, count = self._warned.get(failure.kind, (0.0, 0))
            count += 1
            if now - last < _WARN_EVERY_SEC:
                self._warned[failure.kind] = (last, count)
                return
            self._warned[failure.kind] = (now, 0)
        self.log.warn(
            f"{self.service}.shed",
            f"{failure.status} {failure.kind} on {request.method} {request.url.path} "
            f"({count} since the last such line; request {rid}): {failure.detail}",
            request_id=rid,
            status=failure.status,
            count=count,
        )
