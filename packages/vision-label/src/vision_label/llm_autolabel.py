"""The `llm` autolabel backend: an OpenAI-compatible vision LLM through vision_core.llm.

`autolabel.llm.concurrency` threads each read an image and ask the LLM; the token bucket
(`qps_limit`) is shared by all of them. Answers are cached in `<workdir>/llm-cache/`, so
a rerun makes no call for an image already answered. One image's final failure is
recorded (metrics.json `failures`) and the run goes on.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from vision_core.errors import MediaError
from vision_core.kernel import RunContext
from vision_core.types import Detection
from vision_label.engine import label_folder, make_layout

MIME = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png"}


def run_llm_autolabel(ctx: RunContext) -> dict[str, Any]:
    import cv2

    from vision_core.llm import LLMDetector, encode_image, llm_api_key, llm_class_names

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

    def ask(path: Path) -> tuple[np.ndarray, list[Detection]]:
        data = path.read_bytes()
        if not data:
            raise MediaError(f"{path}: empty file (0 bytes)")
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if image is None:
            raise MediaError(f"{path}: not a decodable image (corrupt or unsupported format)")
        mime = MIME.get(path.suffix.lower())
        if mime is None:  # bmp/webp: not every endpoint takes them
            data, mime = encode_image(image), "image/jpeg"
        h, w = image.shape[:2]
        sha = hashlib.sha256(data).hexdigest()
        return image, detector.detect_encoded(data, mime, w, h, sha256=sha).detections

    def passthrough(
        result: tuple[np.ndarray, list[Detection]],
    ) -> tuple[np.ndarray, list[Detection]]:
        return result

    try:
        label_folder(ctx, layout, names, ask, passthrough, parallel=llm.concurrency)
    finally:
        ctx.metrics["llm"] = detector.stats.as_dict()
        detector.close()
    return {
        "labeled_dir": str(layout.labeled),
        "dataset_yaml": str(layout.labeled / "dataset.yaml"),
        "llm_cache": str(ctx.workdir / "llm-cache"),
    }
