"""LLMDetector: image in, `Detection`s out (pixels of the image), through LLMClient.

Used by vision-label's llm backend and vision-edge's llm mode. Thread-safe: one detector
(one bucket, one cache, one HTTP pool) serves every worker thread.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from vision_core.llm.cache import ResponseCache
from vision_core.llm.client import LLMAnswer, LLMClient, Logger
from vision_core.llm.errors import LLMError
from vision_core.llm.parse import ParsedAnswer, parse_answer
from vision_core.llm.prompt import answer_schema, build_prompt
from vision_core.secrets import Secret, resolve_secret
from vision_core.types import Detection

CACHE_FILE = "llm-cache.sqlite"


class LLMDetector:
    """`detect(image_bgr)` / `detect_encoded(data, mime, w, h)` -> list[Detection]."""

    def __init__(
        self,
        settings: Any,
        class_names: Mapping[int, str],
        *,
        cache_dir: str | Path | None = None,
        api_key: Secret | str | None = None,
        key_path: str = "autolabel.llm.api_key_env",
        logger: Logger | None = None,
        client: LLMClient | None = None,
    ) -> None:
        if not class_names:
            raise LLMError("the LLM needs the class names to look for (set class_map)")
        self.settings = settings
        self.class_names = dict(class_names)
        self.class_ids = {name: cid for cid, name in sorted(self.class_names.items())}
        self.prompt = build_prompt(list(self.class_ids), settings.prompt_extra)
        self.response_format = answer_schema(list(self.class_ids))
        if api_key is None:
            api_key = resolve_secret(settings.api_key_env, key_path=key_path, required=False)
        cache = None
        if cache_dir is not None and settings.cache:
            cache = ResponseCache(Path(cache_dir) / CACHE_FILE)
        self.client = client or LLMClient(settings, api_key=api_key, cache=cache, logger=logger)
        self.logger = logger
        self.last_warnings: list[str] = []

    @property
    def stats(self) -> Any:
        return self.client.stats

    def close(self) -> None:
        self.client.close()

    def detect(self, image_bgr: Any) -> list[Detection]:
        h, w = image_bgr.shape[:2]
        from vision_core.media.codec import encode_jpeg  # OpenCV: vision-core[infer]

        return self.detect_encoded(encode_jpeg(image_bgr, 90), "image/jpeg", w, h).detections

    def detect_encoded(
        self, data: bytes, mime: str, width: int, height: int, *, sha256: str | None = None
    ) -> ParsedAnswer:
        """Detections for an encoded image; the answer is cached only once it parsed."""
        sha = sha256 or hashlib.sha256(data).hexdigest()
        answer: LLMAnswer = self.client.complete(
            data, mime, self.prompt, response_format=self.response_format, image_sha256=sha
        )
        parsed = parse_answer(answer.text, self.class_ids, width, height)
        self.client.remember(answer)
        if parsed.warnings and self.logger is not None:
            self.logger.warn(
                "llm.answer_warnings",
                f"{len(parsed.warnings)} object(s) dropped or fixed: "
                + "; ".join(parsed.warnings[:5]),
            )
        return parsed
