"""When to try a Vapi request again, and how long to wait first.

Pure policy, no I/O: the hook asks it after every attempt. Reads are retried on connection errors,
timeouts, 429 (honouring ``Retry-After``) and 5xx, with capped exponential backoff and full
jitter, bounded both in attempts and in total time. Other 4xx answers are final. Creating a call
is *not* governed by this alone: the hook reconciles before it ever sends a create again.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """Bounds for retrying one logical request.

    :param max_attempts: attempts in all, the first one included.
    :param base_delay: the first backoff in seconds; it doubles each attempt.
    :param max_delay: the cap of a single wait (a ``Retry-After`` longer than this is capped too).
    :param max_total: no new attempt starts once this many seconds have passed since the first.
    """

    max_attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 20.0
    max_total: float = 120.0

    def backoff(self, attempt: int) -> float:
        """Full-jitter exponential backoff after ``attempt`` (1-based) failed."""
        ceiling = min(self.max_delay, self.base_delay * (2 ** (attempt - 1)))
        return random.uniform(ceiling / 2, ceiling)

    def delay(self, attempt: int, elapsed: float, response: httpx.Response | None) -> float | None:
        """Seconds to wait before attempt ``attempt + 1``, or ``None`` when the budget is spent."""
        if attempt >= self.max_attempts:
            return None
        wait = self.backoff(attempt)
        if response is not None:
            wait = max(wait, min(self.max_delay, retry_after_seconds(response) or 0.0))
        if elapsed + wait > self.max_total:
            return None
        return wait


def is_retryable_status(status_code: int) -> bool:
    return status_code in RETRYABLE_STATUS


def retry_after_seconds(response: httpx.Response) -> float | None:
    """``Retry-After`` as seconds: it may be a number of seconds or an HTTP date."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())
