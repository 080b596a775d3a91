"""`vision-stats serve`: the app under uvicorn (imported only here)."""

from __future__ import annotations

from vision_core.logging import StructuredLogger
from vision_stats.settings import StatsSettings


def serve(settings: StatsSettings, log: StructuredLogger) -> None:
    """Run until interrupted. Raises AuthConfigError before binding when no key is set."""
    import uvicorn

    from vision_stats.api import create_app

    app = create_app(settings, log=log)
    url = f"http://{settings.host}:{settings.port}"
    log.info(
        "stats.serve",
        f"serving {url}  (dashboard {url}/, API {url}/api/v1/stats, docs {url}/schema)",
        db=settings.db_display,
    )
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=10,
    )
