"""The OpenAI-compatible vision LLM client: prompt, structured JSON, parse, rate limit,
retries, durable response cache. Needs the `llm` extra (`pip install "vision-core[llm]"`).

Boxes travel as NORMALISED xyxy: ``[x1, y1, x2, y2]`` with 0..1 fractions of the image's
width and height, origin at the top-left corner (see `vision_core.llm.prompt`). They come
back as `Detection`s in pixels of the image passed in.

    detector = LLMDetector(cfg.autolabel.llm, class_names, cache_dir=workdir / "llm-cache")
    detections = detector.detect(image_bgr)
"""

from vision_core.errors import require

require("openai", "vision-core[llm]", "the vision LLM client")

from vision_core.llm.cache import ResponseCache, cache_key  # noqa: E402
from vision_core.llm.client import LLMAnswer, LLMClient, LLMStats  # noqa: E402
from vision_core.llm.detector import LLMDetector  # noqa: E402
from vision_core.llm.errors import LLMCallError, LLMError, LLMParseError  # noqa: E402
from vision_core.llm.parse import ParsedAnswer, extract_json, parse_answer  # noqa: E402
from vision_core.llm.prompt import answer_schema, build_prompt  # noqa: E402
from vision_core.llm.ratelimit import TokenBucket  # noqa: E402
from vision_core.llm.setup import llm_api_key, llm_class_names  # noqa: E402

__all__ = [
    "LLMAnswer",
    "LLMCallError",
    "LLMClient",
    "LLMDetector",
    "LLMError",
    "LLMParseError",
    "LLMStats",
    "ParsedAnswer",
    "ResponseCache",
    "TokenBucket",
    "answer_schema",
    "build_prompt",
    "cache_key",
    "extract_json",
    "llm_api_key",
    "llm_class_names",
    "parse_answer",
]
