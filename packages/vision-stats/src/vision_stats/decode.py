"""Event bodies, checked: the one decoder of every ingest path (the HTTP API and the MQTT
ingest receive the same JSON). Imports no web stack.

- `decode_events`: a StatsEvent or a JSON array of them (`POST /api/v1/stats/events`,
  MQTT topic `.../events/frame`);
- `decode_track_events`: a JSON array of tracking events, crossing / zone / summary by
  their `kind` tag (`POST /api/v1/stats/track-events`, MQTT `.../events/<kind>`).

Bounds come from the structs (`vision_core.types`: lengths, ranges, no control
characters, unknown fields refused); what a struct cannot say is checked here: the times
within `stats.max_ts_skew_days` of now, and a summary's interval that ends after it
starts. Every problem is an InvalidEventsError (422) naming the index and field
(`$[3].direction`), or a MalformedBodyError (400) for a body that is not JSON.
"""

from __future__ import annotations

from collections.abc import Iterator, Sized
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import msgspec

from vision_core.errors import FieldBoundsError
from vision_core.types import (
    CrossingEvent,
    IntervalSummary,
    StatsEvent,
    TrackEvent,
    ZoneEvent,
    check_event,
    check_timestamp,
    describe_validation_error,
)
from vision_stats.errors import InvalidEventsError, MalformedBodyError
from vision_stats.settings import StatsSettings

__all__ = ["check_track_event", "decode_events", "decode_track_events", "kind_of"]

T = TypeVar("T")

# any list: an empty or a long one gets its own message
_track_decoder = msgspec.json.Decoder(list[TrackEvent])
_frame_decoder = msgspec.json.Decoder(StatsEvent | list[StatsEvent])


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


def decode_events(
    body: bytes, settings: StatsSettings, *, now: datetime | None = None
) -> list[StatsEvent]:
    """The events of an ingest body, strictly checked, or the error naming the first problem.

    400 for a body that is not JSON (or not UTF-8); 422 naming the index and field of the
    first bad event (`$[3].latency_ms`, `$[0].ts_utc` for a time outside
    stats.max_ts_skew_days), for an empty list, or for more than max_batch events.
    """
    data = _decode(_frame_decoder, body)
    single = isinstance(data, StatsEvent)
    events = [data] if single else data
    _check_batch(events, settings, "send one event or a list")
    for i, ev in enumerate(events):
        with _invalid_event():
            check_event(ev, max_skew=settings.max_ts_skew, now=now, at="$" if single else f"$[{i}]")
    return events


def decode_track_events(
    body: bytes, settings: StatsSettings, *, now: datetime | None = None
) -> list[TrackEvent]:
    """The events of a track-events body, strictly checked, or the error naming the first
    problem (400: not JSON; 422: `$[3].direction`, `$[0].kind`, an empty or long list)."""
    events = _decode(_track_decoder, body)
    _check_batch(events, settings, "send a list of events")
    current = now or datetime.now(UTC)
    for i, ev in enumerate(events):
        with _invalid_event():
            check_track_event(ev, max_skew=settings.max_ts_skew, now=current, at=f"$[{i}]")
    return events


def _decode(decoder: msgspec.json.Decoder[T], body: bytes) -> T:
    """The body decoded: a MalformedBodyError when it is not JSON, an InvalidEventsError
    naming the field that does not fit the struct."""
    try:
        return decoder.decode(body)
    except msgspec.ValidationError as exc:
        message, field = describe_validation_error(exc)
        raise InvalidEventsError(
            f"invalid event at {field}: {message}; nothing was stored", field=field, stored=0
        ) from None
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise MalformedBodyError(
            f"the body is not valid JSON ({exc}); nothing was stored", stored=0
        ) from None


def _check_batch(events: Sized, settings: StatsSettings, send: str) -> None:
    if not len(events):
        raise InvalidEventsError(f"the body is an empty list: {send}", stored=0)
    if len(events) > settings.max_batch:
        raise InvalidEventsError(
            f"{len(events)} events in one request, more than {settings.max_batch}: split the batch",
            stored=0,
        )


@contextmanager
def _invalid_event() -> Iterator[None]:
    """A FieldBoundsError of one event as the InvalidEventsError of the body."""
    try:
        yield
    except FieldBoundsError as exc:
        raise InvalidEventsError(
            f"invalid event at {exc.field}: {exc.message}; nothing was stored",
            field=exc.field,
            stored=0,
        ) from None
