"""LLMClient: one chat-completions call per image through the real `openai` client.

The `openai` client runs with ``max_retries=0``; this module does the retrying so that
every attempt passes the shared token bucket and a server's ``Retry-After`` is honoured:

- retried: HTTP 429, 500, 502, 503, timeouts and connection errors, up to
  `max_retries` times; the wait before retry k (0-based) is vision_core.net's `Backoff`:
  ``retry_backoff_sec * 2**k`` capped at `MAX_BACKOFF_SEC`, less up to a quarter (jitter),
  or the server's Retry-After (capped by `parse_retry_after`) when that is longer;
- a 400 that names ``response_format``/``json_schema`` turns structured output off for
  this client (every thread) and repeats the call at once, asking for JSON in the text;
- anything else fails the call (LLMCallError) at once.

Answers are cached by (image content hash, model, prompt) when a cache is given; the
caller stores an answer with `remember()` only after it parsed.
"""

from __future__ import annotations

import base64
import hashlib
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import openai

from vision_core.llm.cache import ResponseCache, cache_key
from vision_core.llm.errors import LLMCallError
from vision_core.llm.ratelimit import TokenBucket
from vision_core.net.retry import Backoff, parse_retry_after
from vision_core.secrets import Secret, scrub

if TYPE_CHECKING:
    from vision_core.config.schema import LLMSection

RETRY_STATUS = frozenset({429, 500, 502, 503})
MAX_BACKOFF_SEC = 120.0


class Logger(Protocol):
    def warn(self, event: str, message: str, **extra: Any) -> None: ...


@dataclass
class LLMStats:
    """Call counts and token usage (thread-safe through `add`)."""

    requests: int = 0  # HTTP requests sent (attempts, retries included)
    calls_ok: int = 0  # requests that returned an answer
    retries: int = 0
    failures: int = 0  # calls that failed for good
    cache_hits: int = 0
    structured_fallbacks: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    status_counts: dict[str, int] = field(default_factory=dict)
    rate_wait_sec: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **deltas: float) -> None:
        with self._lock:
            for key, value in deltas.items():
                setattr(self, key, getattr(self, key) + value)

    def count_status(self, status: str) -> None:
        with self._lock:
            self.status_counts[status] = self.status_counts.get(status, 0) + 1

    def as_dict(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests": self.requests,
                "calls_ok": self.calls_ok,
                "retries": self.retries,
                "failures": self.failures,
                "cache_hits": self.cache_hits,
                "structured_fallbacks": self.structured_fallbacks,
                "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens,
                "total_tokens": self.total_tokens,
                "status_counts": dict(self.status_counts),
                "rate_wait_sec": round(self.rate_wait_sec, 3),
            }


@dataclass(frozen=True)
class LLMAnswer:
    text: str
    usage: dict[str, int]
    cached: bool
    key: str
    image_sha256: str
    prompt: str
    attempts: int = 0


def _mentions_response_format(exc: openai.APIStatusError) -> bool:
    text = f"{exc.message} {exc.body}".lower()
    return "response_format" in text or "json_schema" in text


class LLMClient:
    """Chat completions with an image, rate limited, retried and cached (see module doc)."""

    def __init__(
        self,
        settings: LLMSection,
        *,
        api_key: Secret | str | None = None,
        cache: ResponseCache | None = None,
        bucket: TokenBucket | None = None,
        logger: Logger | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        key = api_key.reveal() if isinstance(api_key, Secret) else (api_key or "")
        # local servers (vLLM, Ollama) take any key; the openai client insists on one
        self._openai = openai.OpenAI(
            base_url=settings.base_url,
            api_key=key or "not-needed",
            timeout=settings.timeout_sec,
            max_retries=0,
        )
        self.cache = cache
        self.bucket = bucket or TokenBucket(settings.max_requests_per_sec)
        self.logger = logger
        self.stats = LLMStats()
        self.structured = settings.structured_output
        self._sleep = sleep
        self._backoff = Backoff(
            max(settings.retry_backoff_sec, 1e-3), MAX_BACKOFF_SEC, jitter=0.25, rng=rng
        )

    def close(self) -> None:
        self._openai.close()
        if self.cache is not None:
            self.cache.close()

    def backoff(self, retry: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number `retry` (0-based)."""
        return self._backoff.delay(retry + 1, retry_after)

    def complete(
        self,
        image: bytes,
        mime: str,
        prompt: str,
        *,
        response_format: dict[str, Any] | None = None,
        image_sha256: str | None = None,
    ) -> LLMAnswer:
        """The answer text for `image` (encoded bytes) and `prompt`, from the cache or the API."""
        sha = image_sha256 or hashlib.sha256(image).hexdigest()
        key = cache_key(sha, self.settings.model, prompt)
        if self.cache is not None and self.settings.cache:
            hit = self.cache.get(key)
            if hit is not None:
                self.stats.add(cache_hits=1)
                return LLMAnswer(hit[0], hit[1], True, key, sha, prompt)
        url = f"data:{mime};base64,{base64.b64encode(image).decode('ascii')}"
        messages: list[dict[str, Any]] = [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": prompt},
                    {"type": "image_url", "image_url": {"url": url}},
                ],
            }
        ]
        retry = 0
        attempts = 0
        while True:
            self.stats.add(rate_wait_sec=self.bucket.acquire())
            attempts += 1
            self.stats.add(requests=1)
            structured = self.structured and response_format is not None
            try:
                kwargs: dict[str, Any] = {
                    "model": self.settings.model,
                    "messages": messages,
                    "max_tokens": self.settings.max_tokens,
                }
                if structured:
                    kwargs["response_format"] = response_format
                resp = self._openai.chat.completions.create(**kwargs)
            except openai.APIStatusError as exc:
                status = exc.status_code
                self.stats.count_status(str(status))
                if status == 400 and structured and _mentions_response_format(exc):
                    self.structured = False
                    self.stats.add(structured_fallbacks=1)
                    self._warn(
                        "llm.structured_fallback",
                        "endpoint rejects response_format; asking for JSON in the text",
                    )
                    continue
                if status not in RETRY_STATUS or retry >= self.settings.max_retries:
                    self.stats.add(failures=1)
                    raise LLMCallError(
                        f"LLM request failed with HTTP {status} after {attempts} attempt(s): "
                        f"{scrub(str(exc.message))[:200]}",
                        status=status,
                        attempts=attempts,
                    ) from None
                delay = self.backoff(
                    retry, parse_retry_after(exc.response.headers.get("retry-after"))
                )
                self._retry(retry, f"HTTP {status}", delay)
                retry += 1
                continue
            except (openai.APITimeoutError, openai.APIConnectionError) as exc:
                what = "timeout" if isinstance(exc, openai.APITimeoutError) else "connection error"
                self.stats.count_status(what)
                if retry >= self.settings.max_retries:
                    self.stats.add(failures=1)
                    raise LLMCallError(
                        f"LLM request failed ({what}) after {attempts} attempt(s)",
                        attempts=attempts,
                    ) from None
                delay = self.backoff(retry)
                self._retry(retry, what, delay)
                retry += 1
                continue
            except openai.APIError as exc:  # e.g. a 200 whose body is not a chat completion
                self.stats.count_status("bad response")
                self.stats.add(failures=1)
                raise LLMCallError(
                    f"LLM answer unusable after {attempts} attempt(s): "
                    f"{scrub(str(exc.message))[:200]}",
                    attempts=attempts,
                ) from None
            self.stats.count_status("200")
            self.stats.add(calls_ok=1)
            usage = _usage(resp)
            self.stats.add(**usage)
            text = ""
            if resp.choices:
                text = resp.choices[0].message.content or ""
            return LLMAnswer(text, usage, False, key, sha, prompt, attempts)

    def remember(self, answer: LLMAnswer) -> None:
        """Store an answer that parsed (no-op for cached answers or without a cache)."""
        if self.cache is None or not self.settings.cache or answer.cached:
            return
        self.cache.put(
            answer.key,
            image_sha256=answer.image_sha256,
            model=self.settings.model,
            prompt=answer.prompt,
            answer=answer.text,
            usage=answer.usage,
        )

    def _retry(self, retry: int, why: str, delay: float) -> None:
        self.stats.add(retries=1)
        self._warn(
            "llm.retry",
            f"LLM request: {why}; retry {retry + 1}/{self.settings.max_retries} in {delay:.2f}s",
        )
        self._sleep(delay)

    def _warn(self, event: str, message: str) -> None:
        if self.logger is not None:
            self.logger.warn(event, message)


def _usage(resp: Any) -> dict[str, int]:
    u = getattr(resp, "usage", None)
    if u is None:
        return {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    p = int(getattr(u, "prompt_tokens", 0) or 0)
    c = int(getattr(u, "completion_tokens", 0) or 0)
    t = int(getattr(u, "total_tokens", 0) or (p + c))
    return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": t}
