"""`create_app(settings)`: the Litestar app of vision-stats.

The store is opened (and migrated, and pruned when retention is set) in the lifespan and
handed to handlers by dependency injection; errors become 4xx JSON bodies that name the
problem; the body size limit gives 413.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from functools import partial
from typing import Any, cast

import anyio.to_thread
from litestar import Litestar, Request, Response
from litestar.datastructures import State
from litestar.di import Provide
from litestar.exceptions.http_exceptions import RequestEntityTooLarge
from litestar.openapi import OpenAPIConfig

from vision_core.logging import StructuredLogger
from vision_core.secrets import scrub
from vision_stats import __version__
from vision_stats.api.controllers import HealthController, IngestController, QueryController
from vision_stats.api.dashboard import DashboardController, static_router
from vision_stats.errors import StatsError
from vision_stats.settings import StatsSettings
from vision_stats.store import StatsStore, open_store


def _provide_store(state: State) -> StatsStore:
    return cast(StatsStore, state.store)


@asynccontextmanager
async def _store_lifespan(app: Litestar) -> AsyncIterator[None]:
    settings: StatsSettings = app.state.settings
    log: StructuredLogger = app.state.log
    store = await anyio.to_thread.run_sync(partial(open_store, settings.db))
    log.info(
        "stats.store",
        f"statistics store ready ({store.engine}, {settings.db_display})",
        engine=store.engine,
        db=settings.db_display,
    )
    try:
        if settings.retention_days:
            pruned = await anyio.to_thread.run_sync(
                store.prune, timedelta(days=settings.retention_days)
            )
            log.info(
                "stats.prune",
                f"retention: deleted {pruned.events_deleted} events before "
                f"{pruned.cutoff_utc.isoformat()}",
                events_deleted=pruned.events_deleted,
            )
        app.state.store = store
        yield
    finally:
        await anyio.to_thread.run_sync(store.close)


def _error_body(status: int, detail: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"status_code": status, "detail": scrub(detail)}
    if extra:
        body["extra"] = extra
    return body


def _stats_error(request: Request[Any, Any, Any], exc: StatsError) -> Response[dict[str, Any]]:
    if exc.status_code >= 500:
        request.app.state.log.error("stats.error", scrub(str(exc)), path=request.url.path)
    return Response(_error_body(exc.status_code, str(exc), exc.extra), status_code=exc.status_code)


def _too_large(
    request: Request[Any, Any, Any], exc: RequestEntityTooLarge
) -> Response[dict[str, Any]]:
    settings: StatsSettings = request.app.state.settings
    detail = (
        f"request body larger than {settings.max_body_mb:g} MB (stats.max_body_mb): "
        "send smaller batches; nothing was stored"
    )
    return Response(_error_body(413, detail, {"stored": 0}), status_code=413)


def create_app(settings: StatsSettings, *, log: StructuredLogger | None = None) -> Litestar:
    """Build the app. Raises AuthConfigError when no key is set and anonymous is off."""
    settings.check_auth()
    logger = log or StructuredLogger(None)
    if not settings.api_key:
        logger.warn(
            "stats.anonymous",
            "ingest is OPEN: no API key is set and stats.allow_anonymous = true",
        )
    return Litestar(
        route_handlers=[
            IngestController,
            QueryController,
            HealthController,
            DashboardController,
            static_router,
        ],
        dependencies={"store": Provide(_provide_store, sync_to_thread=False)},
        lifespan=[_store_lifespan],
        state=State({"settings": settings, "log": logger}),
        exception_handlers={
            StatsError: _stats_error,
            RequestEntityTooLarge: _too_large,
        },
        request_max_body_size=settings.max_body_bytes,
        openapi_config=OpenAPIConfig(
            title="vision-stats",
            version=__version__,
            description="Statistics of the vision fleet: ingest StatsEvents, query totals.",
            path="/schema",
        ),
        debug=False,
    )
