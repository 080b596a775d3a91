"""Tracking-event bodies, checked: the one decoder of every ingest path (HTTP, and any
other transport that receives the same JSON array). Imports no web stack.

Bounds come from the structs (`vision_core.types`: lengths, ranges, no control
characters, unknown fields refused); what a struct cannot say is checked here: the times
within `stats.max_ts_skew_days` of now, and a summary's interval that ends after it
starts. Every problem is an InvalidEventsError (422) naming the index and field
(`$[3].direction`), or a MalformedBodyError (400) for a body that is not JSON.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec

from vision_core.errors import FieldBoundsError
from vision_core.types import (
    CrossingEvent,
    IntervalSummary,
    TrackEvent,
    ZoneEvent,
    check_timestamp,
    describe_validation_error,
)
from vision_stats.errors import InvalidEventsError, MalformedBodyError
from vision_stats.settings import StatsSettings

__all__ = ["check_track_event", "decode_track_events", "kind_of"]

# any list: an empty or a long one gets its own message
_decoder = msgspec.json.Decoder(list[TrackEvent])


def kind_of(ev: TrackEvent) -> str:
    """The wire tag of an event: crossing, zone or summary."""
    if isinstance(ev, CrossingEvent):
        return "crossing"
    return "zone" if isinstance(ev, ZoneEvent) else "summary"


def check_track_event(
    ev: TrackEvent, *, max_skew: timedelta, now: datetime | None = None, at: str = "$"
) -> None:
    """What a msgspec constraint cannot say: the times within the window around now, and a
    summary's interval that ends after it starts."""
    if isinstance(ev, IntervalSummary):
        check_timestamp(ev.start_utc, field=f"{at}.start_utc", max_skew=max_skew, now=now)
        check_timestamp(ev.end_utc, field=f"{at}.end_utc", max_skew=max_skew, now=now)
        if ev.end_utc <= ev.start_utc:
            raise FieldBoundsError(
                f"{at}.end_utc",
                f"{ev.end_utc.isoformat()} is not after start_utc {ev.start_utc.isoformat()}",
            )
    else:
        check_timestamp(ev.ts_utc, field=f"{at}.ts_utc", max_skew=max_skew, now=now)


def decode_track_events(
    body: bytes, settings: StatsSettings, *, now: datetime | None = None
) -> list[TrackEvent]:
    """The events of a track-events body, strictly checked, or the error naming the first
    problem (400: not JSON; 422: `$[3].direction`, `$[0].kind`, an empty or long list)."""
    try:
        events = _decoder.decode(body)
    except msgspec.ValidationError as exc:
        message, field = describe_validation_error(exc)
        raise InvalidEventsError(
            f"invalid event at {field}: {message}; nothing was stored", field=field, stored=0
        ) from None
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise MalformedBodyError(
            f"the body is not valid JSON ({exc}); nothing was stored", stored=0
        ) from None
    if not events:
        raise InvalidEventsError("the body is an empty list: send a list of events", stored=0)
    if len(events) > settings.max_batch:
        raise InvalidEventsError(
            f"{len(events)} events in one request, more than {settings.max_batch}: split the batch",
            stored=0,
        )
    current = now or datetime.now(UTC)
    for i, ev in enumerate(events):
        try:
            check_track_event(ev, max_skew=settings.max_ts_skew, now=current, at=f"$[{i}]")
        except FieldBoundsError as exc:
            raise InvalidEventsError(
                f"invalid event at {exc.field}: {exc.message}; nothing was stored",
                field=exc.field,
                stored=0,
            ) from None
    return events
