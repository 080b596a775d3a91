"""What the service runs with: the `[stats]` config section made concrete.

Built once at the edge (the CLI, or a test) from the pipeline config plus command-line
overrides; the API key is resolved from the environment variable the config names.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from vision_core.config import PipelineConfig
from vision_core.secrets import Secret, redact_dsn, resolve_secret
from vision_stats.errors import AuthConfigError


@dataclass(frozen=True, slots=True, kw_only=True)
class StatsSettings:
    db: str = "work-dir/stats.db"
    host: str = "127.0.0.1"
    port: int = 8100
    api_key: Secret = field(default_factory=lambda: Secret("", "VISION_STATS_API_KEY"))
    allow_anonymous: bool = False
    max_body_mb: float = 8.0
    retention_days: int = 0
    refresh_sec: float = 5.0
    max_batch: int = 10_000
    max_ts_skew_days: float = 3650.0

    @classmethod
    def from_config(
        cls,
        cfg: PipelineConfig,
        *,
        db: str | None = None,
        host: str | None = None,
        port: int | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> StatsSettings:
        s = cfg.stats
        return cls(
            db=db or s.db,
            host=host or s.host,
            port=s.port if port is None else port,
            api_key=resolve_secret(s.api_key_env, key_path="stats.api_key_env", environ=environ),
            allow_anonymous=s.allow_anonymous,
            max_body_mb=s.max_body_mb,
            retention_days=s.retention_days,
            refresh_sec=s.refresh_sec,
            max_ts_skew_days=s.max_ts_skew_days,
        )

    @property
    def db_display(self) -> str:
        """The database with any password blanked."""
        return redact_dsn(self.db)

    @property
    def max_ts_skew(self) -> timedelta:
        return timedelta(days=self.max_ts_skew_days)

    @property
    def max_body_bytes(self) -> int:
        return int(self.max_body_mb * 1024 * 1024)

    def check_auth(self) -> None:
        """An empty API key is only acceptable when anonymous ingest is allowed."""
        if not self.api_key and not self.allow_anonymous:
            env = self.api_key.env_name
            raise AuthConfigError(
                f"stats.api_key_env: environment variable {env!r} is not set or empty, so "
                f"nobody could send events: export {env}=<key>, or set "
                "stats.allow_anonymous = true to accept events without a key"
            )
