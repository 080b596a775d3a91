"""The Litestar setup vision-server and vision-stats share: one plugin both install.

`VisionWebPlugin` brings the API-key guard (`api_key_guard`, `has_valid_key`), the short
error body with a request id (`ErrorBody`; details and tracebacks go to the log), the
exception handlers, the total request-header cap (431), the `X-Request-Id` header,
the OpenAPI document (`openapi_config`: /schema, the ApiKey scheme) and Prometheus metrics through prometheus_client (`/metrics`; multiprocess mode when
`PROMETHEUS_MULTIPROC_DIR` is set, so the counters of every uvicorn worker are summed).

Needs the `web` extra: `pip install "vision-core[web]"`. Nothing else in vision-core
imports this package, so a device never loads litestar.
"""

from vision_core.errors import require

require("litestar", "vision-core[web]", "the vision web services")

from vision_core.web.auth import API_KEY_HEADER, api_key_guard, has_valid_key  # noqa: E402
from vision_core.web.errors import ErrorBody, error_responses  # noqa: E402
from vision_core.web.metrics import PROMETHEUS_MEDIA_TYPE, WebMetrics  # noqa: E402
from vision_core.web.openapi import openapi_config  # noqa: E402
from vision_core.web.plugin import VisionWebPlugin, plugin_of, request_id_of  # noqa: E402

__all__ = [
    "API_KEY_HEADER",
    "PROMETHEUS_MEDIA_TYPE",
    "ErrorBody",
    "VisionWebPlugin",
    "WebMetrics",
    "api_key_guard",
    "error_responses",
    "has_valid_key",
    "openapi_config",
    "plugin_of",
    "request_id_of",
]
