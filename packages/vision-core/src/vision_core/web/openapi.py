"""The OpenAPI document both vision services serve: at `/schema`, with the `ApiKey`
security scheme (the X-API-Key header) and a description that ends with the error body."""

from __future__ import annotations

from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme

from vision_core.web.auth import API_KEY_HEADER

__all__ = ["ERRORS_NOTE", "openapi_config"]

ERRORS_NOTE = (
    "Errors are `{status_code, detail, request_id, extra}`; the request id is also in the "
    "X-Request-Id header and in the server log."
)


def openapi_config(title: str, version: str, about: str, key_env_key: str) -> OpenAPIConfig:
    """`about`: what the service does (ERRORS_NOTE follows it); `key_env_key`: the config
    key that names the environment variable holding the API key."""
    return OpenAPIConfig(
        title=title,
        version=version,
        description=f"{about} {ERRORS_NOTE}",
        path="/schema",
        components=Components(
            security_schemes={
                "ApiKey": SecurityScheme(
                    type="apiKey",
                    name=API_KEY_HEADER,
                    security_scheme_in="header",
                    description=f"{key_env_key} names the variable",
                )
            }
        ),
    )
