"""Read times and durations typed by people: `30d`, `12h`, `1h30m`, ISO 8601, `now`.

A duration where a time is expected means "that long ago": `since=24h` is the last day.
A timestamp without a zone is taken as UTC.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from vision_stats.errors import TimeParseError

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_DURATION = re.compile(r"^(?:\d+(?:\.\d+)?[smhdw])+$")
_HINT = "expected a duration like 30d, 12h, 1h30m, 15m or 90s"


def parse_duration(text: str, *, what: str = "duration") -> timedelta:
    """`30d` -> 30 days. Units: s, m, h, d, w; parts may be chained (`1h30m`)."""
    value = text.strip().lower()
    if not _DURATION.match(value):
        raise TimeParseError(f"{what}: {_HINT}, got {text!r}", field=what)
    seconds = sum(float(num) * _UNITS[unit] for num, unit in _PART.findall(value))
    try:
        return timedelta(seconds=seconds)
    except OverflowError:
        raise TimeParseError(f"{what}: {text!r} is longer than any calendar", field=what) from None


def parse_time(text: str, *, now: datetime | None = None, what: str = "time") -> datetime:
    """An aware UTC datetime from ISO 8601, `now`, or a duration meaning that long ago."""
    value = text.strip()
    now = now or datetime.now(UTC)
    if value.lower() == "now":
        return now
    try:
        if value and _DURATION.match(value.lower()):
            return now - parse_duration(value, what=what)
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)
    except OverflowError:
        raise TimeParseError(
            f"{what}: {text!r} is outside the years 1..9999 once taken to UTC", field=what
        ) from None
    except ValueError:
        raise TimeParseError(
            f"{what}: expected an ISO 8601 time (2024-05-01T12:00:00Z), 'now', "
            f"or a duration meaning that long ago (24h), got {text!r}",
            field=what,
        ) from None


def parse_optional_time(
    text: str | None, *, now: datetime | None = None, what: str = "time"
) -> datetime | None:
    return None if text is None or not text.strip() else parse_time(text, now=now, what=what)
