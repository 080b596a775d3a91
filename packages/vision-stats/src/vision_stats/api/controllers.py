"""Controllers, grouped by domain: ingest (guarded), queries, health.

Every handler touching the database is sync and runs in a worker thread
(`sync_to_thread=True`), so the event loop never waits on SQLite or PostgreSQL.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody, QueryParameter

from vision_core.types import StatsEvent
from vision_stats import __version__
from vision_stats.api.auth import API_KEY_HEADER, api_key_guard
from vision_stats.errors import InvalidEventsError, InvalidQueryError, MalformedBodyError
from vision_stats.models import (
    Bucket,
    ClassTotal,
    Health,
    InsertResult,
    Overview,
    Series,
    SourceInfo,
)
from vision_stats.settings import StatsSettings
from vision_stats.store import StatsStore
from vision_stats.timeparse import parse_optional_time

EventsBody = StatsEvent | list[StatsEvent]
Store = NamedDependency[StatsStore]  # opened in the lifespan, see app.py
_decoder = msgspec.json.Decoder(EventsBody)

Limit = Annotated[int, QueryParameter(ge=1, le=1000, description="most rows returned")]
Source = Annotated[str | None, QueryParameter(description="only this source_id")]
Since = Annotated[
    str | None,
    QueryParameter(description="from (inclusive): ISO 8601, 'now', or a duration ago (24h, 7d)"),
]
BucketParam = Annotated[Bucket, QueryParameter(description="minute or hour buckets")]
Until = Annotated[
    str | None, QueryParameter(description="to (exclusive): ISO 8601, 'now', or a duration ago")
]


def _range(since: str | None, until: str | None) -> tuple[datetime | None, datetime | None]:
    return (
        parse_optional_time(since, what="since"),
        parse_optional_time(until, what="until"),
    )


async def validate_events(request: Request[Any, Any, Any]) -> None:
    """Strictly decode the body before Litestar does, to answer with the exact field.

    400 for a body that is not JSON; 422 naming the index and field of the first bad
    event (`$[3].latency_ms`), for an empty list, or for more than max_batch events.
    Nothing of a rejected body is stored.
    """
    body = await request.body()
    try:
        data = _decoder.decode(body)
    except msgspec.ValidationError as exc:
        text = str(exc)
        message, _, where = text.partition(" - at `")
        field = where.rstrip("`") or "$"
        raise InvalidEventsError(
            f"invalid event at {field}: {message}; nothing was stored",
            field=field,
            stored=0,
        ) from None
    except msgspec.DecodeError as exc:
        raise MalformedBodyError(
            f"the body is not valid JSON ({exc}); nothing was stored", stored=0
        ) from None
    settings: StatsSettings = request.app.state.settings
    count = 1 if isinstance(data, StatsEvent) else len(data)
    if count == 0:
        raise InvalidEventsError("the body is an empty list: send one event or a list", stored=0)
    if count > settings.max_batch:
        raise InvalidEventsError(
            f"{count} events in one request, more than {settings.max_batch}: split the batch",
            stored=0,
        )


class IngestController(Controller):
    path = "/api/v1/stats"
    tags = ("ingest",)
    guards = (api_key_guard,)

    @post(
        "/events",
        status_code=200,
        before_request=validate_events,
        sync_to_thread=True,
        summary="Store one StatsEvent or a list of them",
        description=(
            f"Needs the `{API_KEY_HEADER}` header. A batch is stored in one transaction; "
            "an event_id already stored is skipped and reported in duplicate_ids (sending "
            "a batch twice counts it once). A malformed event rejects the whole body with "
            "422 naming its index and field."
        ),
    )
    def ingest(self, data: JSONBody[EventsBody], store: Store) -> InsertResult:
        return store.insert(data)


class QueryController(Controller):
    path = "/api/v1/stats"
    tags = ("query",)

    @get("/recent", sync_to_thread=True, summary="Newest events first")
    def recent(
        self,
        store: Store,
        limit: Limit = 50,
        source: Source = None,
        since: Since = None,
        until: Until = None,
    ) -> list[StatsEvent]:
        start, end = _range(since, until)
        return store.recent(limit, source=source, since=start, until=end)

    @get("/overview", sync_to_thread=True, summary="Fleet totals")
    def overview(
        self, store: Store, source: Source = None, since: Since = None, until: Until = None
    ) -> Overview:
        start, end = _range(since, until)
        return store.overview(source=source, since=start, until=end)

    @get("/classes", sync_to_thread=True, summary="Detections per class, most first")
    def classes(
        self,
        store: Store,
        limit: Limit = 20,
        source: Source = None,
        since: Since = None,
        until: Until = None,
    ) -> list[ClassTotal]:
        start, end = _range(since, until)
        return store.class_totals(limit, source=source, since=start, until=end)

    @get("/series", sync_to_thread=True, summary="Events, detections per class, latency")
    def series(
        self,
        store: Store,
        bucket: BucketParam = "minute",
        source: Source = None,
        since: Since = None,
        until: Until = None,
    ) -> Series:
        start, end = _range(since, until)
        if start is not None and end is not None and start >= end:
            raise InvalidQueryError("since must be before until", field="since")
        return store.series(bucket=bucket, since=start, until=end, source=source)

    @get("/sources", sync_to_thread=True, summary="Every source with its last event time")
    def sources(self, store: Store) -> list[SourceInfo]:
        return store.sources()


class HealthController(Controller):
    path = "/api/v1/stats"
    tags = ("health",)

    @get("/health", sync_to_thread=True, summary="The service and its database answer")
    def health(self, store: Store) -> Health:
        store.ping()
        return Health("ok", store.engine, store.schema_version(), __version__)
