"""The one error body of the vision services, and its OpenAPI documentation.

Every 4xx/5xx answer is `{status_code, detail, request_id, extra?}`. A 4xx says what was
wrong with the request (the field, the limit, the config key). A 5xx says only what kind
of fault it was: the details (exception text, SQL, DSN, paths) and the traceback go to
the log line that carries the same request id.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar.openapi import ResponseSpec

__all__ = ["ERROR_TEXTS", "GENERIC_5XX", "ErrorBody", "error_responses"]


class ErrorBody(msgspec.Struct, omit_defaults=True):
    """Every 4xx/5xx answer: the status, what was wrong, the request id (also in the
    X-Request-Id header and in the server log), and details such as the field."""

    status_code: int
    detail: str
    request_id: str
    extra: dict[str, Any] | None = None


GENERIC_5XX = {
    500: "internal server error; the server log has the details under this request_id",
    502: "bad gateway; the server log has the details under this request_id",
    503: "service unavailable; retry later (the server log has the details under this request_id)",
}

ERROR_TEXTS = {
    400: "the body or a parameter cannot be read (not JSON, bad query value)",
    401: "missing or wrong X-API-Key header",
    404: "no such path",
    413: "the body is larger than the configured limit",
    415: "unsupported Content-Type",
    422: "a field is missing, unknown or out of bounds; `extra.field` names it",
    429: "per-client rate limit exceeded; retry after the Retry-After delay",
    431: "the request headers are larger than the limit (16 KiB in all)",
    500: "internal error; details in the server log under request_id",
    503: "service unavailable (database down, queue full, not ready); retry later",
}


def error_responses(*codes: int, **texts: str) -> dict[int, ResponseSpec]:
    """OpenAPI responses for `codes` (431 and 500 always: any route can give them).

    `texts` overrides a description: `error_responses(422, s422="...")`.
    """
    out: dict[int, ResponseSpec] = {}
    for code in sorted({*codes, 431, 500}):
        text = texts.get(f"s{code}") or ERROR_TEXTS.get(code, "error")
        out[code] = ResponseSpec(ErrorBody, description=text, generate_examples=False)
    return out
