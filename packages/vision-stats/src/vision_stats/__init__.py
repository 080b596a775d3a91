"""vision-stats: the statistics store (SQLite or PostgreSQL), its API, dashboard and CLI.

Importing this package does not import the web stack; `vision_stats.api.create_app`
does.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("vision-stats")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

from vision_stats.errors import StatsError
from vision_stats.models import (
    ClassTotal,
    DoctorReport,
    InsertResult,
    Overview,
    PruneResult,
    Series,
    SeriesBucket,
    SourceInfo,
)
from vision_stats.settings import StatsSettings
from vision_stats.store import StatsStore, open_store

__all__ = [
    "ClassTotal",
    "DoctorReport",
    "InsertResult",
    "Overview",
    "PruneResult",
    "Series",
    "SeriesBucket",
    "SourceInfo",
    "StatsError",
    "StatsSettings",
    "StatsStore",
    "__version__",
    "open_store",
]
