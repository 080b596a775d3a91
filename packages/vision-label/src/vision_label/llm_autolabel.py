"""The `llm` autolabel backend: an OpenAI-compatible vision LLM through vision_core.llm.

`autolabel.llm.concurrency` requests run at once (vision-core's `LLMEngine` on the
pipeline's runner pool); the token bucket (`max_requests_per_sec`) is shared by all of
them. Answers are cached in `<workdir>/llm-cache/`, so a rerun makes no call for an image
already answered. One image's final failure is recorded (metrics.json `failures`) and the
run goes on.
"""

from __future__ import annotations

from typing import Any

from vision_core.kernel import RunContext
from vision_label.engine import label_folder, make_layout


def run_llm_autolabel(ctx: RunContext) -> dict[str, Any]:
    from vision_core.llm import LLMDetector, llm_api_key, llm_class_names
    from vision_core.pipeline import LLMEngine

    cfg = ctx.config
    llm = cfg.autolabel.llm
    layout = make_layout(cfg.data.unlabeled_dir, cfg.data.labeled_dir)
    names = llm_class_names(cfg, who="the llm backend")
    detector = LLMDetector(
        llm,
        names,
        cache_dir=ctx.workdir / "llm-cache",
        api_key=llm_api_key(llm),
        logger=ctx.logger,
    )
    ctx.metrics["llm_model"] = llm.model
    engine = LLMEngine(detector)
    try:
        label_folder(
            ctx,
            layout,
            names,
            engine,
            workers=cfg.autolabel.workers,
            runners=llm.concurrency,
        )
    finally:
        ctx.metrics["llm"] = detector.stats.as_dict()
        engine.close()
    return {
        "labeled_dir": str(layout.labeled),
        "dataset_yaml": str(layout.labeled / "dataset.yaml"),
        "llm_cache": str(ctx.workdir / "llm-cache"),
    }
