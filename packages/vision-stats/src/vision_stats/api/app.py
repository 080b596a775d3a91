"""`create_app(settings)`: the Litestar app of vision-stats.

The store is opened (and migrated, and pruned when retention is set) in the lifespan and
handed to handlers by dependency injection. The shared vision plugin
(`vision_core.web.VisionWebPlugin`) brings the API-key guard, the error bodies with a
request id, the 431 header cap, `/metrics` and the exception handlers; the body size
limit gives 413.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import timedelta
from functools import partial
from typing import Any, cast

import anyio.to_thread
from litestar import Litestar
from litestar.datastructures import State
from litestar.di import Provide
from prometheus_client.core import GaugeMetricFamily

from vision_core.logging import StructuredLogger
from vision_core.web import VisionWebPlugin, openapi_config
from vision_stats import __version__
from vision_stats.api.controllers import HealthController, IngestController, QueryController
from vision_stats.api.dashboard import DashboardController, static_router
from vision_stats.api.track import TrackIngestController, TrackQueryController
from vision_stats.errors import StoreUnavailableError
from vision_stats.settings import StatsSettings
from vision_stats.store import StatsStore, open_store


def _provide_store(state: State) -> StatsStore:
    store = state.get("store")
    if store is None:  # not opened yet, or closing
        raise StoreUnavailableError("the statistics store is not open (starting or stopping)")
    return cast(StatsStore, store)


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
        app.state.store = None
        await anyio.to_thread.run_sync(store.close)


class _InfoCollector:
    """vision_stats_info{version, engine}: read at scrape time."""

    def __init__(self, state: State) -> None:
        self._state = state

    def collect(self) -> Iterator[Any]:
        info = GaugeMetricFamily(
            "vision_stats_info",
            "the service: version and store engine",
            labels=["version", "engine"],
        )
        store = self._state.get("store")
        info.add_metric([__version__, store.engine if store is not None else ""], 1.0)
        yield info


def create_app(settings: StatsSettings, *, log: StructuredLogger | None = None) -> Litestar:
    """Build the app. Raises AuthConfigError when no key is set and anonymous is off."""
    settings.check_auth()
    logger = log or StructuredLogger(None)
    if not settings.api_key:
        logger.warn(
            "stats.anonymous",
            "ingest is OPEN: no API key is set and stats.allow_anonymous = true",
        )
    too_large = (
        f"request body larger than {settings.max_body_mb:g} MB (stats.max_body_mb): "
        "send smaller batches; nothing was stored"
    )
    web = VisionWebPlugin(
        "vision_stats", settings.api_key, logger, details={413: (too_large, {"stored": 0})}
    )
    state = State({"settings": settings, "log": logger, "store": None})
    web.metrics.add_collector(_InfoCollector(state))
    state["events_total"] = web.metrics.counter(
        "events", "events received by outcome (stored, duplicate, rejected)", ("outcome",)
    )
    state["track_events_total"] = web.metrics.counter(
        "track_events",
        "tracking events received by kind (crossing, zone, summary; unknown for a rejected"
        " body) and outcome (stored, duplicate, rejected)",
        ("kind", "outcome"),
    )
    return Litestar(
        route_handlers=[
            IngestController,
            QueryController,
            TrackIngestController,
            TrackQueryController,
            HealthController,
            DashboardController,
            static_router,
        ],
        dependencies={"store": Provide(_provide_store, sync_to_thread=False)},
        lifespan=[_store_lifespan],
        state=state,
        plugins=[web],
        request_max_body_size=settings.max_body_bytes,
        openapi_config=openapi_config(
            "vision-stats",
            __version__,
            "Statistics of the vision fleet: ingest StatsEvents and tracking events "
            "(line crossings, zone events, interval summaries), query totals.",
            "stats.api_key_env",
        ),
        debug=False,
    )
