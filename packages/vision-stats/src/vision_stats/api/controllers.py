"""Controllers, grouped by domain: ingest (guarded), queries, health.

Every handler touching the database is sync and runs in a worker thread
(`sync_to_thread=True`), so the event loop never waits on SQLite or PostgreSQL.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.connection import ASGIConnection
from litestar.di import NamedDependency
from litestar.openapi.spec import Operation, RequestBody, Schema
from litestar.params import JSONBody, QueryParameter

from vision_core.textsafe import SAFE_TEXT_PATTERN, is_safe_text
from vision_core.types import MAX_NAME, StatsEvent
from vision_core.web import API_KEY_HEADER, api_key_guard, error_responses, has_valid_key
from vision_stats import __version__
from vision_stats.decode import decode_events
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

MAX_BATCH = 10_000  # StatsSettings.max_batch
# what the OpenAPI document states; the decoder takes any list so that an empty one or a
# long one gets its own message (and max_batch may be lower than the documented bound)
EventsBody = StatsEvent | list[StatsEvent]
Store = NamedDependency[StatsStore]  # opened in the lifespan, see app.py

Limit = Annotated[int, QueryParameter(ge=1, le=1000, description="most rows returned")]
Source = Annotated[
    str | None,
    QueryParameter(
        description="only this source_id",
        max_length=MAX_NAME,
        pattern=SAFE_TEXT_PATTERN,
    ),
]
Since = Annotated[
    str | None,
    QueryParameter(
        description="from (inclusive): ISO 8601, 'now', or a duration ago (24h, 7d)",
        max_length=64,
    ),
]
BucketParam = Annotated[Bucket, QueryParameter(description="minute or hour buckets")]
Until = Annotated[
    str | None,
    QueryParameter(description="to (exclusive): ISO 8601, 'now', or a duration ago", max_length=64),
]
READ_ERRORS = error_responses(400, 503)


@dataclass
class EventsOperation(Operation):
    """The ingest body as documented: one event, or a list of 1..MAX_BATCH events (Litestar
    does not carry a list's length bounds inside a union into the schema)."""

    def __post_init__(self) -> None:
        body = self.request_body
        if not isinstance(body, RequestBody):
            return
        for media in body.content.values():
            union = media.schema
            for option in getattr(union, "one_of", None) or []:
                if isinstance(option, Schema) and option.items is not None:
                    option.min_items, option.max_items = 1, MAX_BATCH


def _range(since: str | None, until: str | None) -> tuple[datetime | None, datetime | None]:
    return (
        parse_optional_time(since, what="since"),
        parse_optional_time(until, what="until"),
    )


def _source(source: str | None) -> str | None:
    """Litestar checks the pattern too; this keeps the store safe when called directly."""
    if source is not None and (len(source) > MAX_NAME or not is_safe_text(source)):
        raise InvalidQueryError(
            f"source: at most {MAX_NAME} characters, no control or bidi characters",
            field="source",
        )
    return source


async def validate_events(request: Request[Any, Any, Any]) -> None:
    """Strictly decode the body before Litestar does, to answer with the exact field.

    Nothing of a rejected body is stored.
    """
    settings: StatsSettings = request.app.state.settings
    try:
        request.state.events = decode_events(await request.body(), settings)
    except (InvalidEventsError, MalformedBodyError):
        request.app.state.events_total.labels(outcome="rejected").inc()
        raise


class IngestController(Controller):
    path = "/api/v1/stats"
    tags = ("ingest",)
    guards = (api_key_guard,)
    security = ({"ApiKey": []},)

    @post(
        "/events",
        status_code=200,
        before_request=validate_events,
        operation_class=EventsOperation,
        sync_to_thread=True,
        summary="Store one StatsEvent or a list of them",
        description=(
            f"Needs the `{API_KEY_HEADER}` header. A batch is stored in one transaction; "
            "an event_id already stored is skipped and reported in duplicate_ids (sending "
            "a batch twice counts it once). A malformed event rejects the whole body with "
            "422 naming its index and field; so does a ts_utc further from now than "
            "stats.max_ts_skew_days."
        ),
        responses=error_responses(400, 401, 413, 422, 503),
    )
    def ingest(
        self, request: Request[Any, Any, Any], data: JSONBody[EventsBody], store: Store
    ) -> InsertResult:
        result = store.insert(request.state.events)
        counter = request.app.state.events_total
        counter.labels(outcome="stored").inc(result.stored)
        counter.labels(outcome="duplicate").inc(result.duplicates)
        return result


class QueryController(Controller):
    path = "/api/v1/stats"
    tags = ("query",)

    @get("/recent", sync_to_thread=True, summary="Newest events first", responses=READ_ERRORS)
    def recent(
        self,
        store: Store,
        limit: Limit = 50,
        source: Source = None,
        since: Since = None,
        until: Until = None,
    ) -> list[StatsEvent]:
        start, end = _range(since, until)
        return store.recent(limit, source=_source(source), since=start, until=end)

    @get("/overview", sync_to_thread=True, summary="Fleet totals", responses=READ_ERRORS)
    def overview(
        self, store: Store, source: Source = None, since: Since = None, until: Until = None
    ) -> Overview:
        start, end = _range(since, until)
        return store.overview(source=_source(source), since=start, until=end)

    @get(
        "/classes",
        sync_to_thread=True,
        summary="Detections per class, most first",
        responses=READ_ERRORS,
    )
    def classes(
        self,
        store: Store,
        limit: Limit = 20,
        source: Source = None,
        since: Since = None,
        until: Until = None,
    ) -> list[ClassTotal]:
        start, end = _range(since, until)
        return store.class_totals(limit, source=_source(source), since=start, until=end)

    @get(
        "/series",
        sync_to_thread=True,
        summary="Events, detections per class, latency",
        responses=READ_ERRORS,
    )
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
        return store.series(bucket=bucket, since=start, until=end, source=_source(source))

    @get(
        "/sources",
        sync_to_thread=True,
        summary="Every source with its last event time",
        responses=error_responses(503),
    )
    def sources(self, store: Store) -> list[SourceInfo]:
        return store.sources()


class HealthController(Controller):
    path = "/api/v1/stats"
    tags = ("health",)

    @get(
        "/health",
        sync_to_thread=True,
        summary="Liveness; with the X-API-Key header also the engine and versions",
        description=(
            "Without a key: `{status}` only. With the key (or when no key is configured): "
            "`{status, engine, schema_version, version}`. 503 when the database does not "
            "answer."
        ),
        responses=error_responses(503),
    )
    def health(self, request: ASGIConnection[Any, Any, Any, Any], store: Store) -> Health:
        store.ping()
        if not has_valid_key(request):
            return Health("ok")
        return Health("ok", store.engine, store.schema_version(), __version__)
