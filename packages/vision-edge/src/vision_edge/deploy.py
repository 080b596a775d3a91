"""The deployers `edge_local`, `edge_stream` and `edge_llm` (vision.deployers entry points).

Each builds its engine from the config, with errors that name the key, and hands it to the
runtime loop (`vision_edge.runtime`).
"""

from __future__ import annotations

import os
from typing import Any

from vision_core.config.schema import PipelineConfig
from vision_core.errors import ConfigError
from vision_core.kernel import RunContext
from vision_core.logging import StructuredLogger
from vision_core.pipeline import Engine, LocalEngine
from vision_edge.runtime import run_with

__all__ = ["run_edge_llm", "run_edge_local", "run_edge_stream"]


def _local(
    cfg: PipelineConfig, runners: int = 1, logger: StructuredLogger | None = None
) -> LocalEngine:
    """The local engine; with several runners each session run gets cores/runners threads
    (unless infer.threads says otherwise), so the runs share the CPU instead of fighting,
    and OpenVINO gets as many streams (runs at once)."""
    from vision_core.infer import detector_from_config

    threads = None
    if runners > 1 and not cfg.infer.threads:
        threads = max(1, (os.cpu_count() or 1) // runners)
    return LocalEngine(detector_from_config(cfg, threads=threads, streams=runners, logger=logger))


def _local_engine(ctx: RunContext) -> Engine:
    return _local(ctx.config, ctx.config.deploy.edge.runners, ctx.logger)


def _stream_engine(ctx: RunContext) -> Engine:
    from vision_core.secrets import resolve_secret
    from vision_edge.engines import StreamEngine

    cfg = ctx.config
    edge = cfg.deploy.edge
    fallback = None
    if edge.on_stream_failure == "local":
        try:
            fallback = _local(cfg)
        except Exception as exc:
            raise ConfigError(
                "deploy.edge.on_stream_failure = 'local' needs a local model: "
                f"{exc} (or set deploy.edge.on_stream_failure = 'skip')"
            ) from exc
    key = resolve_secret(cfg.deploy.remote.api_key_env, key_path="deploy.remote.api_key_env")
    return StreamEngine(edge, key.reveal(), fallback=fallback, logger=ctx.logger)


def _llm_engine(ctx: RunContext) -> Engine:
    from vision_core.errors import require

    require("openai", "vision-edge[llm]", "llm mode")
    from vision_core.llm import LLMDetector, llm_api_key, llm_class_names
    from vision_core.pipeline import LLMEngine

    cfg = ctx.config
    llm = cfg.autolabel.llm
    detector = LLMDetector(
        llm,
        llm_class_names(cfg, who="llm mode"),
        cache_dir=ctx.workdir / "llm-cache",
        api_key=llm_api_key(llm),
        logger=ctx.logger,
    )
    edge = cfg.deploy.edge
    return LLMEngine(
        detector,
        quality=edge.jpeg_quality,
        sample=edge.source == "camera",
        max_requests_per_sec=llm.max_requests_per_sec,
    )


def run_edge_local(ctx: RunContext, **kwargs: Any) -> dict[str, Any]:
    return run_with(ctx, _local_engine, **kwargs)


def run_edge_stream(ctx: RunContext, **kwargs: Any) -> dict[str, Any]:
    return run_with(ctx, _stream_engine, **kwargs)


def run_edge_llm(ctx: RunContext, **kwargs: Any) -> dict[str, Any]:
    return run_with(ctx, _llm_engine, **kwargs)
