"""`create_app(settings)`: the Litestar app of vision-server.

The model session, batcher, decode threads and stats outbox/sender are opened in the
lifespan and handed to handlers by dependency injection (`runtime`). The shared vision
plugin (`vision_core.web.VisionWebPlugin`) brings the API-key guard, the error bodies
`{status_code, detail, request_id, extra}` (a 4xx names the problem; a 5xx is generic and
logged with its traceback under the request id), the 431 header cap and /metrics. The
body size limit is an app setting (413).

`create_app_from_env` is the factory each uvicorn worker process calls when
`--workers N` > 1: it reads the resolved config (never a secret: keys stay in the
environment variables the config names) from the environment variable LAUNCH_ENV.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import anyio.to_thread
from litestar import Litestar
from litestar.datastructures import State
from litestar.di import Provide

from vision_core.logging import StructuredLogger
from vision_core.types import FrameRequest
from vision_core.web import VisionWebPlugin, openapi_config
from vision_server import __version__
from vision_server.controllers import FrameController, HealthController, runtime_of
from vision_server.metrics import ServerMetrics
from vision_server.model import LoadedModel
from vision_server.runtime import Runtime, open_runtime
from vision_server.settings import ServerSettings

__all__ = ["LAUNCH_ENV", "create_app", "create_app_from_env"]

LAUNCH_ENV = "VISION_SERVER_LAUNCH"


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
    too_large = (
        f"request body larger than {settings.remote.max_body_mb:g} MB "
        "(deploy.remote.max_body_mb): send a smaller frame"
    )
    web = VisionWebPlugin(
        "vision_server",
        settings.api_key,
        logger,
        details={413: (too_large, None)},
        schema_structs=(FrameRequest,),
    )
    metrics = ServerMetrics(web.metrics)
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
        route_handlers=[FrameController, HealthController],
        dependencies={"runtime": Provide(runtime_of, sync_to_thread=False)},
        lifespan=[lifespan],
        state=State({"settings": settings, "log": logger, "metrics": metrics, "runtime": None}),
        plugins=[web],
        request_max_body_size=settings.max_body_bytes,
        openapi_config=openapi_config(
            "vision-server",
            __version__,
            "Object detection on frames sent by edge devices: batched ONNX Runtime "
            "inference, bounded queue, per-frame stats to vision-stats.",
            "deploy.remote.api_key_env",
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
