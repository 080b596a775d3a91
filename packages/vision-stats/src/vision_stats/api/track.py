"""Tracking events over HTTP: the ingest (guarded) and the reads (counts, zones, summaries).

POST /api/v1/stats/track-events takes a JSON array of `vision_core.types.TrackEvent`
(crossings, zone events and interval summaries, kinds mixed), with the rules of
/events: the API key, the body cap (413), the batch cap, strict decoding (422 naming the
index and field), the time window around now, nothing stored from a rejected body.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.openapi.spec import Operation, RequestBody, Schema
from litestar.params import JSONBody, QueryParameter
from msgspec import Meta

from vision_core.textsafe import SAFE_TEXT_PATTERN, is_safe_text
from vision_core.types import MAX_NAME, TrackEvent
from vision_core.web import API_KEY_HEADER, api_key_guard, error_responses
from vision_stats.api.controllers import (
    MAX_BATCH,
    READ_ERRORS,
    Since,
    Source,
    Store,
    Until,
    _range,
    _source,
)
from vision_stats.decode import decode_track_events, kind_of
from vision_stats.errors import InvalidEventsError, InvalidQueryError, MalformedBodyError
from vision_stats.models import (
    CountSeries,
    DwellStats,
    InsertResult,
    SummarySeries,
    TrackBucket,
    ZoneOccupancy,
    ZoneSeries,
)
from vision_stats.settings import StatsSettings

TrackBatch = Annotated[list[TrackEvent], Meta(min_length=1, max_length=MAX_BATCH)]

TrackBucketParam = Annotated[
    TrackBucket,
    QueryParameter(
        description="bucket width: minute, hour or day (UTC). The range is widened to whole"
        " buckets and may hold at most 1500 of them"
    ),
]


def _name_param(what: str) -> Any:
    return QueryParameter(
        description=f"only this {what} (1-200 characters, no control or bidi characters)",
        min_length=1,
        max_length=MAX_NAME,
        pattern=SAFE_TEXT_PATTERN,
    )


Line = Annotated[str | None, _name_param("line")]
Zone = Annotated[str | None, _name_param("zone")]
TrackSince = Annotated[
    str | None,
    QueryParameter(
        description="from (inclusive; rounded down to its bucket): ISO 8601, 'now', or a"
        " duration ago (24h, 7d). Default: 60 minutes, 24 hours or 30 days before until",
        max_length=64,
    ),
]
TrackUntil = Annotated[
    str | None,
    QueryParameter(
        description="to (exclusive; rounded up to its bucket): ISO 8601, 'now', or a duration"
        " ago. Default: now",
        max_length=64,
    ),
]


@dataclass
class TrackEventsOperation(Operation):
    """The body as documented: an array of 1..MAX_BATCH events (Litestar does not carry a
    list's length bounds into the schema)."""

    def __post_init__(self) -> None:
        body = self.request_body
        if isinstance(body, RequestBody):
            for media in body.content.values():
                if isinstance(media.schema, Schema):
                    media.schema.min_items, media.schema.max_items = 1, MAX_BATCH


def _name(value: str | None, what: str) -> str | None:
    """Litestar checks the pattern too; this keeps the store safe when called directly."""
    if value is not None and not (0 < len(value) <= MAX_NAME and is_safe_text(value)):
        raise InvalidQueryError(
            f"{what}: 1-{MAX_NAME} characters, no control or bidi characters", field=what
        )
    return value


async def validate_track_events(request: Request[Any, Any, Any]) -> None:
    """Strictly decode the body before Litestar does, to answer with the exact field."""
    settings: StatsSettings = request.app.state.settings
    try:
        request.state.track_events = decode_track_events(await request.body(), settings)
    except (InvalidEventsError, MalformedBodyError):
        request.app.state.track_events_total.labels(kind="unknown", outcome="rejected").inc()
        raise


class TrackIngestController(Controller):
    path = "/api/v1/stats"
    tags = ("ingest",)
    guards = (api_key_guard,)
    security = ({"ApiKey": []},)

    @post(
        "/track-events",
        status_code=200,
        before_request=validate_track_events,
        operation_class=TrackEventsOperation,
        sync_to_thread=True,
        summary="Store a list of tracking events (crossings, zone events, interval summaries)",
        description=(
            f"Needs the `{API_KEY_HEADER}` header. A JSON array of 1..{MAX_BATCH} events, each"
            " tagged by `kind` (crossing, zone, summary), kinds mixed. The batch is stored in"
            " one transaction; an event whose kind and event_id are already stored is skipped"
            " and listed in duplicate_ids (sending a batch twice counts it once). A malformed"
            " event rejects the whole body with 422 naming its index and field, as does a"
            " time further from now than stats.max_ts_skew_days or a summary whose end_utc is"
            " not after its start_utc."
        ),
        responses=error_responses(400, 401, 413, 422, 503),
    )
    def ingest_track_events(
        self, request: Request[Any, Any, Any], data: JSONBody[TrackBatch], store: Store
    ) -> InsertResult:
        events: list[TrackEvent] = request.state.track_events
        result = store.insert_track_events(events)
        stored = set(result.stored_ids)
        outcomes: Counter[tuple[str, str]] = Counter()
        for ev in events:
            new = ev.event_id in stored
            stored.discard(ev.event_id)  # a repeat inside the batch is a duplicate
            outcomes[(kind_of(ev), "stored" if new else "duplicate")] += 1
        counter = request.app.state.track_events_total
        for (kind, outcome), n in sorted(outcomes.items()):
            counter.labels(kind=kind, outcome=outcome).inc(n)
        return result


class TrackQueryController(Controller):
    path = "/api/v1/stats/track"
    tags = ("tracking",)

    @get(
        "/counts",
        sync_to_thread=True,
        summary="Line crossings per bucket, line, class and direction",
        description=(
            "Rows only for the (bucket, line, class) that had a crossing, ordered by time, line"
            " and class; `totals` sums them over the range. Hour and day buckets come from"
            " the hourly rollups, minute buckets from the raw crossings."
        ),
        responses=READ_ERRORS,
    )
    def counts(
        self,
        store: Store,
        bucket: TrackBucketParam = "hour",
        source: Source = None,
        line: Line = None,
        since: TrackSince = None,
        until: TrackUntil = None,
    ) -> CountSeries:
        start, end = _range(since, until)
        return store.track_counts(
            bucket=bucket, since=start, until=end, source=_source(source), line=_name(line, "line")
        )

    @get(
        "/occupancy",
        sync_to_thread=True,
        summary="Objects inside each zone now, per source, zone and class",
        description=(
            "Per source and zone: enters minus exits per class over every stored zone event,"
            " never below 0. A track the device lost inside a zone leaves it with an exit"
            " marked lost (sent when the device gives the track up): it counts as an exit and"
            " in lost_exits. reported_occupancy is the device's own count in its latest zone"
            " event of that zone, to compare."
        ),
        responses=READ_ERRORS,
    )
    def occupancy(
        self, store: Store, source: Source = None, zone: Zone = None
    ) -> list[ZoneOccupancy]:
        return store.zone_occupancy(source=_source(source), zone=_name(zone, "zone"))

    @get(
        "/occupancy/series",
        sync_to_thread=True,
        summary="Zone enters, exits, dwell and occupancy per bucket",
        description=(
            "Per zone and class (summed over sources unless `source` is given): enters,"
            " exits, lost exits and mean dwell of the exits in each bucket, and the occupancy"
            " at the END of each bucket (occupancy now minus the enters and exits after it)."
        ),
        responses=READ_ERRORS,
    )
    def occupancy_series(
        self,
        store: Store,
        bucket: TrackBucketParam = "hour",
        source: Source = None,
        zone: Zone = None,
        since: TrackSince = None,
        until: TrackUntil = None,
    ) -> ZoneSeries:
        start, end = _range(since, until)
        return store.zone_series(
            bucket=bucket, since=start, until=end, source=_source(source), zone=_name(zone, "zone")
        )

    @get(
        "/dwell",
        sync_to_thread=True,
        summary="Seconds inside a zone per zone and class: count, mean, p50, p95, max",
        description=(
            "Over the exits in [since, until) (default: the 24 hours before now), lost exits"
            " included (their dwell runs to when the track was last seen inside). p50 and p95"
            " are exact nearest-rank percentiles of the stored dwell times."
        ),
        responses=READ_ERRORS,
    )
    def dwell(
        self,
        store: Store,
        source: Source = None,
        zone: Zone = None,
        since: Since = None,
        until: Until = None,
    ) -> list[DwellStats]:
        start, end = _range(since, until)
        return store.dwell_stats(
            since=start, until=end, source=_source(source), zone=_name(zone, "zone")
        )

    @get(
        "/summaries",
        sync_to_thread=True,
        summary="Interval summaries per bucket: frames, detections, tracks, new tracks",
        description=(
            "A summary counts in the bucket of its start_utc. new_tracks_by_class (tracks"
            " first seen in an interval) summed over a bucket is its number of distinct"
            " objects; tracks_by_class counts an object once per interval it was seen in."
        ),
        responses=READ_ERRORS,
    )
    def summaries(
        self,
        store: Store,
        bucket: TrackBucketParam = "hour",
        source: Source = None,
        since: TrackSince = None,
        until: TrackUntil = None,
    ) -> SummarySeries:
        start, end = _range(since, until)
        return store.summary_series(bucket=bucket, since=start, until=end, source=_source(source))
