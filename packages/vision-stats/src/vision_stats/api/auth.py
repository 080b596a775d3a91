"""The ingest guard: an X-API-Key header compared in constant time."""

from __future__ import annotations

import hmac
from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException
from litestar.handlers.base import BaseRouteHandler

from vision_stats.settings import StatsSettings

API_KEY_HEADER = "X-API-Key"


def api_key_guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """401 unless the request carries the configured key (no key configured: anonymous)."""
    settings: StatsSettings = connection.app.state.settings
    expected = settings.api_key.reveal()
    if not expected:  # only possible with allow_anonymous, checked at start
        return
    given = connection.headers.get(API_KEY_HEADER, "")
    if not hmac.compare_digest(given.encode(), expected.encode()):
        what = "wrong" if given else "missing"
        raise NotAuthorizedException(f"{what} {API_KEY_HEADER} header")
