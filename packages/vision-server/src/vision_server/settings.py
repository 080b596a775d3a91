"""What the server runs with: `infer`, `deploy.remote` and `deploy.stats` made concrete.

Built once at the edge of the program (the CLI, a uvicorn worker, a test) from the pipeline
config; the API keys are resolved from the environment variables the config names.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from vision_core.config import InferSection, PipelineConfig, RemoteSection, StatsSink
from vision_core.secrets import Secret, resolve_secret
from vision_core.stats import stats_api_key
from vision_server.errors import ServerConfigError


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerSettings:
    infer: InferSection = field(default_factory=InferSection)
    remote: RemoteSection = field(default_factory=RemoteSection)
    stats: StatsSink = field(default_factory=StatsSink)
    class_map: Mapping[int, str] = field(default_factory=dict)
    workdir: Path = Path("work-dir")
    log_level: str = "INFO"
    api_key: Secret = field(default_factory=lambda: Secret("", "VISION_INGEST_API_KEY"))
    stats_api_key: Secret = field(default_factory=lambda: Secret("", "VISION_STATS_API_KEY"))
    max_ts_skew_days: float = 3650.0  # stats.max_ts_skew_days: what vision-stats accepts

    @classmethod
    def from_config(
        cls, cfg: PipelineConfig, *, environ: Mapping[str, str] | None = None
    ) -> ServerSettings:
        remote, sink = cfg.deploy.remote, cfg.deploy.stats
        return cls(
            infer=cfg.infer,
            remote=remote,
            stats=sink,
            class_map=dict(cfg.class_map),
            workdir=Path(cfg.run.workdir).resolve(),
            log_level=cfg.run.log_level,
            api_key=resolve_secret(
                remote.api_key_env, key_path="deploy.remote.api_key_env", environ=environ
            ),
            stats_api_key=stats_api_key(cfg, environ),
            max_ts_skew_days=cfg.stats.max_ts_skew_days,
        )

    @property
    def max_ts_skew(self) -> timedelta:
        return timedelta(days=self.max_ts_skew_days)

    @property
    def max_body_bytes(self) -> int:
        return int(self.remote.max_body_mb * 1024 * 1024)

    @property
    def model_path(self) -> Path:
        return Path(self.infer.model_path)

    @property
    def outbox_dir(self) -> Path:
        return self.workdir / "outbox"

    def check(self) -> None:
        """Raise ServerConfigError unless a model file is set and auth is configured."""
        self.check_model()
        self.check_auth()

    def check_model(self) -> None:
        if not self.infer.model_path:
            raise ServerConfigError(
                "infer.model_path is empty: the server needs an ONNX model; set it in the "
                "config or pass --set infer.model_path=<workdir>/runs/<run>/model.onnx"
            )
        path = self.model_path
        if not path.is_file():
            what = "is a directory, not a file" if path.is_dir() else "does not exist"
            raise ServerConfigError(
                f"infer.model_path: {path} {what} (cwd {os.getcwd()}); point it at a "
                "model.onnx written by vision-train"
            )

    def check_auth(self) -> None:
        """An empty ingest key is only acceptable with deploy.remote.allow_anonymous."""
        if not self.api_key and not self.remote.allow_anonymous:
            env = self.api_key.env_name
            raise ServerConfigError(
                f"deploy.remote.api_key_env: environment variable {env!r} is not set "
                f"or empty, so no client could send frames: export {env}=<key>, or set "
                "deploy.remote.allow_anonymous = true to accept frames without a key"
            )
