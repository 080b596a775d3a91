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
    CountRow,
    CountSeries,
    CountTotal,
    DoctorReport,
    DwellStats,
    InsertResult,
    Overview,
    PruneResult,
    Series,
    SeriesBucket,
    SourceInfo,
    SummaryBucket,
    SummarySeries,
    ZoneOccupancy,
    ZoneSeries,
    ZonesReport,
    ZoneTrack,
)
from vision_stats.settings import StatsSettings
from vision_stats.store import StatsStore, open_store

__all__ = [
    "ClassTotal",
    "CountRow",
    "CountSeries",
    "CountTotal",
    "DoctorReport",
    "DwellStats",
    "InsertResult",
    "Overview",
    "PruneResult",
    "Series",
    "SeriesBucket",
    "SourceInfo",
    "StatsError",
    "StatsSettings",
    "StatsStore",
    "SummaryBucket",
    "SummarySeries",
    "ZoneOccupancy",
    "ZoneSeries",
    "ZoneTrack",
    "ZonesReport",
    "__version__",
    "open_store",
]
