"""The vision-stats error family: one base error, one subclass per kind of problem.

Every error carries the HTTP status it maps to when it reaches the API, so a handler
never has to guess (bad input is always 4xx; a database that is down is 503).
"""

from __future__ import annotations

from typing import Any

from vision_core.errors import VisionError


class StatsError(VisionError):
    """Base class of every error raised on purpose by vision-stats."""

    status_code = 500

    def __init__(self, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.extra = extra


class InvalidQueryError(StatsError, ValueError):
    """A query parameter (time, bucket, limit) is not acceptable; the message names it."""

    status_code = 400


class TimeParseError(InvalidQueryError):
    """A time or duration string could not be read."""


class InvalidEventsError(StatsError, ValueError):
    """An ingest body is not a valid StatsEvent or list of them; nothing was stored."""

    status_code = 422


class MalformedBodyError(StatsError, ValueError):
    """An ingest body is not JSON at all; nothing was stored."""

    status_code = 400


class AuthConfigError(StatsError):
    """The service would start without an API key while anonymous ingest is not allowed."""


class StoreError(StatsError):
    """The statistics store failed (schema, SQL, integrity)."""


class StoreNotFoundError(StoreError):
    """A read-only command was pointed at a SQLite file that does not exist."""


class StoreUnavailableError(StoreError):
    """The database cannot be reached, or no connection freed up in time."""

    status_code = 503
    #: what a client is told (the message, with the DSN and the driver's words, is logged)
    public_detail = "the statistics database did not answer; retry later"
    headers = {"Retry-After": "5"}  # noqa: RUF012 - a constant


class SchemaVersionError(StoreError):
    """The database was written by a newer vision-stats than this one."""
