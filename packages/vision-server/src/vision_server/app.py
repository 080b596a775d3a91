"""`create_app(settings)`: the Litestar app of vision-server.

The model session, batcher, decode threads and stats outbox/sender are opened in the
lifespan and handed to handlers by dependency injection (`runtime`). Errors become 4xx
JSON bodies `{status_code, detail, extra}` that name the problem; only a genuine server
fault is a 500 (logged with its traceback). The body size limit is an app setting (413).

`create_app_from_env` is the factory each uvicorn worker process calls when
`--workers N` > 1: it reads the resolved config (never a secret: keys stay in the
environment variables the config names) from the environment variable LAUNCH_ENV.
"""

from __future__ import annotations

import json
import os
import time
import traceback
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import anyio.to_thread
from litestar import Litestar, Request, Response
from litestar.datastructures import State
from litestar.di import Provide
from litestar.exceptions import HTTPException
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from vision_core.logging import StructuredLogger
from vision_core.secrets import scrub
from vision_server import __version__
from vision_server.controllers import (
    FrameController,
    HealthController,
    MetricsController,
    runtime_of,
)
from vision_server.errors import ServerError
from vision_server.metrics import ServerMetrics
from vision_server.model import LoadedModel
from vision_server.runtime import Runtime, open_runtime
from vision_server.settings import ServerSettings

__all__ = ["LAUNCH_ENV", "create_app", "create_app_from_env"]

LAUNCH_ENV = "VISION_SERVER_LAUNCH"

_HTTP_KINDS = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
    429: "rate_limited",
}


def _body(status: int, detail: str, extra: Any = None) -> dict[str, Any]:
    body: dict[str, Any] = {"status_code": status, "detail": scrub(detail)}
    if extra:
        body["extra"] = extra
    return body


def _metrics(request: Request[Any, Any, Any]) -> ServerMetrics:
    metrics: ServerMetrics = request.app.state.metrics
    return metrics


def _server_error(request: Request[Any, Any, Any], exc: ServerError) -> Response[Any]:
    _metrics(request).error(exc.kind)
    if exc.status_code >= 500 and exc.kind not in ("queue_full", "not_ready"):
        request.app.state.log.error("server.error", scrub(str(exc)), path=request.url.path)
    return Response(
        _body(exc.status_code, exc.detail, exc.extra or None),
        status_code=exc.status_code,
        headers=exc.headers,
    )


def _http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    status = exc.status_code
    _metrics(request).error(_HTTP_KINDS.get(status, f"http_{status}"))
    detail = exc.detail
    if status == 413:
        settings: ServerSettings = request.app.state.settings
        detail = (
            f"request body larger than {settings.remote.max_body_mb:g} MB "
            "(deploy.remote.max_body_mb): send a smaller frame"
        )
    return Response(
        _body(status, detail, exc.extra or None), status_code=status, headers=exc.headers
    )


def _internal_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    _metrics(request).error("internal")
    request.app.state.log.error(
        "server.internal",
        f"unhandled {type(exc).__name__} on {request.method} {request.url.path}: {exc}",
        traceback=scrub(traceback.format_exc()),
    )
    return Response(
        _body(500, f"internal server error ({type(exc).__name__}); see the server log"),
        status_code=500,
    )


def _route_label(scope: Scope) -> str:
    template = str(scope.get("path_template") or scope.get("path", ""))
    return "/schema" if template.startswith("/schema") else template


def _request_metrics(metrics: ServerMetrics) -> Any:
    """ASGI middleware: requests_total{route, method, status} and their latency."""

    def middleware(app: ASGIApp) -> ASGIApp:
        async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            start = time.perf_counter()
            status = 500

            async def send_status(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = int(message["status"])
                await send(message)

            try:
                await app(scope, receive, send_status)
            except Exception as exc:  # the exception middleware outside us answers it
                status = int(getattr(exc, "status_code", 500))
                raise
            finally:
                route = _route_label(scope)
                method = str(scope.get("method", ""))
                metrics.requests.inc(route=route, method=method, status=str(status))
                metrics.latency.observe(time.perf_counter() - start, route=route)

        return wrapped

    return middleware


def create_app(
    settings: ServerSettings,
    *,
    log: StructuredLogger | None = None,
    model: LoadedModel | None = None,
) -> Litestar:
    """Build the app; the model is loaded in the lifespan (or `model`, already loaded).

    Raises ServerConfigError at once when no model file is set or no API key is set while
    anonymous access is off.
    """
    settings.check_auth()
    if model is None:
        settings.check_model()
    logger = log or StructuredLogger(None)
    metrics = ServerMetrics()
    if not settings.api_key:
        logger.warn(
            "server.anonymous",
            "frame API is OPEN: no API key is set and deploy.remote.allow_anonymous = true",
        )

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        runtime: Runtime = await anyio.to_thread.run_sync(
            partial(open_runtime, settings, logger, metrics, model=model)
        )
        runtime.batcher.start()
        app.state.runtime = runtime
        m = runtime.model
        logger.info(
            "server.ready",
            f"worker {runtime.pid}: model {m.path} ({m.provider}, batching {m.batching}, "
            f"max_batch {settings.remote.max_batch}, queue {settings.remote.queue_size})",
            model=m.path,
            sha256=m.sha256,
            provider=m.provider,
            batching=m.batching,
        )
        try:
            yield
        finally:
            app.state.runtime = None
            await runtime.batcher.close()
            await anyio.to_thread.run_sync(runtime.close)
            logger.info("server.stopped", f"worker {runtime.pid} stopped")

    return Litestar(
        route_handlers=[FrameController, HealthController, MetricsController],
        dependencies={"runtime": Provide(runtime_of, sync_to_thread=False)},
        lifespan=[lifespan],
        state=State({"settings": settings, "log": logger, "metrics": metrics, "runtime": None}),
        exception_handlers={
            ServerError: _server_error,
            HTTPException: _http_error,
            Exception: _internal_error,
        },
        middleware=[_request_metrics(metrics)],
        request_max_body_size=settings.max_body_bytes,
        openapi_config=OpenAPIConfig(
            title="vision-server",
            version=__version__,
            description=(
                "Object detection on frames sent by edge devices: batched ONNX Runtime "
                "inference, bounded queue, per-frame stats to vision-stats."
            ),
            path="/schema",
            components=Components(
                security_schemes={
                    "ApiKey": SecurityScheme(
                        type="apiKey",
                        name="X-API-Key",
                        security_scheme_in="header",
                        description="deploy.remote.api_key_env names the variable",
                    )
                }
            ),
        ),
        debug=False,
    )


def launch_env(config: dict[str, Any], log_path: str | None) -> str:
    """The value of LAUNCH_ENV for worker processes: the resolved config, no secret."""
    return json.dumps({"config": config, "log_path": log_path})


def create_app_from_env() -> Litestar:
    """uvicorn's app factory in each worker process (see the module docstring)."""
    from vision_core.config import build_config

    raw = os.environ.get(LAUNCH_ENV)
    if not raw:
        raise RuntimeError(
            f"{LAUNCH_ENV} is not set: start the server with `vision-server serve`, which "
            "sets it for its worker processes"
        )
    launch = json.loads(raw)
    cfg = build_config(launch["config"], source=LAUNCH_ENV)
    settings = ServerSettings.from_config(cfg)
    log = StructuredLogger(launch.get("log_path"), settings.log_level, console=True)
    log.bind(backend="remote")
    return create_app(settings, log=log)
