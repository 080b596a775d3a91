"""The HTTP service: `create_app(settings)` builds the Litestar app (imports litestar)."""

from vision_stats.api.app import create_app

__all__ = ["create_app"]
