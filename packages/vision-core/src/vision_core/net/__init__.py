"""The one HTTP and retry layer: a keep-alive httpx client and one backoff helper.

Every outgoing call of the code base (the stats sender, the edge's stream engine, the LLM
client's retries, the camera's reopen loop) waits with `Backoff` and reads `Retry-After`
with `parse_retry_after`, so they share one formula and one cap.
"""

from vision_core.net.retry import RETRY_AFTER_CAP_SEC, Backoff, parse_retry_after

__all__ = ["RETRY_AFTER_CAP_SEC", "Backoff", "parse_retry_after"]
