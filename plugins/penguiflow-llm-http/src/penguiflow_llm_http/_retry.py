"""When to try an LLM request again, and how long to wait first."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

from penguiflow.llm import LLMConfigurationError

__all__ = ["RetryPolicy", "parse_retry_after"]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with jitter for 429, 5xx and connection errors.

    Attempt `n` (1-based) waits `base_delay_s * 2 ** (n - 1)`, at most `max_delay_s`, scaled
    by a random factor in `[1 - jitter, 1]` so many clients do not retry in step. A
    `Retry-After` from the provider is honoured as given, up to `max_retry_after_s`; a longer
    one is not waited for (the error is raised instead)."""

    max_retries: int = 3
    base_delay_s: float = 0.5
    max_delay_s: float = 20.0
    jitter: float = 0.5
    max_retry_after_s: float = 60.0

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise LLMConfigurationError(
                f"max_retries must be >= 0 (0 turns retries off), got {self.max_retries}"
            )
        if not 0.0 <= self.jitter <= 1.0:
            raise LLMConfigurationError(f"jitter must be between 0 and 1, got {self.jitter}")

    def delay_s(self, attempt: int, retry_after_s: float | None = None) -> float | None:
        """Seconds to wait before retry `attempt`, or None when the policy gives up."""
        if attempt > self.max_retries:
            return None
        if retry_after_s is not None:
            return float(retry_after_s) if retry_after_s <= self.max_retry_after_s else None
        delay: float = min(self.base_delay_s * 2.0 ** (attempt - 1), self.max_delay_s)
        return delay * (1.0 - self.jitter * random.random())


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """`Retry-After` as seconds: a number of seconds or an HTTP date; None if absent or bad."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)
