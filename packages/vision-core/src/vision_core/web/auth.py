"""The API-key guard: an X-API-Key header compared in constant time, on bytes."""

from __future__ import annotations

from hmac import compare_digest
from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException
from litestar.handlers.base import BaseRouteHandler

API_KEY_HEADER = "X-API-Key"


def has_valid_key(connection: ASGIConnection[Any, Any, Any, Any]) -> bool:
    """True when the request carries the configured key, or when no key is configured.

    No key configured is possible only with anonymous access allowed (checked and warned
    at start). compare_digest on bytes: equal time for a wrong key of any length.
    """
    from vision_core.web.plugin import plugin_of

    expected = plugin_of(connection.app).api_key.reveal()
    if not expected:
        return True
    given = connection.headers.get(API_KEY_HEADER, "")
    return compare_digest(given.encode("utf-8", "surrogateescape"), expected.encode())


def api_key_guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """401 unless the request carries the configured key."""
    if not has_valid_key(connection):
        given = connection.headers.get(API_KEY_HEADER, "")
        raise NotAuthorizedException(f"{'wrong' if given else 'missing'} {API_KEY_HEADER} header")
