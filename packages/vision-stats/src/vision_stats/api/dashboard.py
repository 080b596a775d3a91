"""GET / : the dashboard page; its script and stylesheet are files of this package.

No CDN: everything the page loads comes from this server (the CSP header says so to
the browser too), so it works on a machine with no internet.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from litestar import Controller, Request, Response, get
from litestar.static_files import create_static_files_router

from vision_stats.settings import StatsSettings

DASHBOARD_DIR = Path(__file__).resolve().parent.parent / "dashboard"
CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; frame-ancestors 'none'"
)


class DashboardController(Controller):
    path = "/"
    include_in_schema = False

    @get("/", sync_to_thread=False)
    def index(self, request: Request[Any, Any, Any]) -> Response[str]:
        settings: StatsSettings = request.app.state.settings
        html = (DASHBOARD_DIR / "index.html").read_text(encoding="utf-8")
        html = html.replace("{{REFRESH_SEC}}", f"{settings.refresh_sec:g}")
        return Response(
            html,
            media_type="text/html; charset=utf-8",
            headers={"Content-Security-Policy": CSP, "Cache-Control": "no-store"},
        )


static_router = create_static_files_router(
    path="/static", directories=[DASHBOARD_DIR], include_in_schema=False, name="dashboard-static"
)
