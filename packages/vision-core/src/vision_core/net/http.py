"""The keep-alive HTTP client every outgoing call uses (httpx, a maintained client).

`HttpClient` wraps one `httpx.Client` (a pool of keep-alive connections) with what our
callers share: a base timeout, default headers (the API key), and one immediate retry when
a pooled connection turns out to have been closed by the server while idle (the request
never reached it, or reached it only to be deduplicated: every endpoint we call is
idempotent by event id or side-effect free per frame). That retry is made only when the
previous request succeeded, i.e. when a kept-alive connection can have gone stale; after a
failure the pool holds no connection, so a failure is then a real one. Anything else is the
caller's to handle (it knows which failures to back off from).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

__all__ = ["HttpAnswer", "HttpClient", "TransportFailure", "check_http_url"]

# a failure of the link or the peer (not an HTTP status): the caller backs off and retries
TransportFailure = (httpx.TransportError, OSError)
_STALE = (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)


def check_http_url(url: str) -> str:
    """`url` if it is an http(s):// URL with a host, else ValueError saying so."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"must be an http(s):// URL, got {url!r}")
    return url


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    status: int
    headers: httpx.Headers
    body: bytes

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


class HttpClient:
    """POSTs to one service over keep-alive connections (see the module docstring)."""

    def __init__(
        self,
        *,
        timeout_sec: float,
        headers: Mapping[str, str] | None = None,
        max_connections: int = 4,
    ) -> None:
        self.timeout_sec = timeout_sec
        self._client = httpx.Client(
            timeout=httpx.Timeout(timeout_sec),
            headers=dict(headers or {}),
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
            follow_redirects=False,
        )
        self._warm = False  # the last request succeeded: a kept-alive connection may be idle

    def post(
        self, url: str, content: bytes, headers: Mapping[str, str] | None = None
    ) -> HttpAnswer:
        """One POST; a stale keep-alive connection is retried once at once on a new one.

        Raises httpx.TimeoutException on a timeout and another httpx.TransportError (or
        OSError) when the service cannot be reached.
        """
        warm, self._warm = self._warm, False
        try:
            resp = self._client.post(url, content=content, headers=headers)
        except _STALE:
            if not warm:
                raise
            resp = self._client.post(url, content=content, headers=headers)
        self._warm = True
        return HttpAnswer(resp.status_code, resp.headers, resp.content)

    def close(self) -> None:
        self._client.close()
