"""The retry policy's bounds and its reading of Retry-After."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx

from airflow_provider_vapi.wire.retries import RetryPolicy, is_retryable_status, retry_after_seconds


def _response(headers: dict[str, str]) -> httpx.Response:
    return httpx.Response(429, headers=headers)


def test_retry_after_seconds_and_http_date() -> None:
    assert retry_after_seconds(_response({"Retry-After": "3"})) == 3.0
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 25 <= (retry_after_seconds(_response({"Retry-After": when})) or 0) <= 31
    assert retry_after_seconds(_response({})) is None
    assert retry_after_seconds(_response({"Retry-After": "soon"})) is None


def test_delay_honours_retry_after_within_the_cap() -> None:
    policy = RetryPolicy(max_attempts=5, base_delay=0.01, max_delay=4.0, max_total=60)
    assert policy.delay(1, 0.0, _response({"Retry-After": "2"})) == 2.0
    assert policy.delay(1, 0.0, _response({"Retry-After": "999"})) == 4.0


def test_budget_in_attempts_and_time() -> None:
    policy = RetryPolicy(max_attempts=3, base_delay=1.0, max_delay=1.0, max_total=10)
    assert policy.delay(2, 0.0, None) is not None
    assert policy.delay(3, 0.0, None) is None  # third attempt was the last
    assert policy.delay(1, 9.9, None) is None  # waiting would pass the total budget


def test_backoff_grows_and_is_capped() -> None:
    policy = RetryPolicy(base_delay=1.0, max_delay=5.0)
    assert 0.5 <= policy.backoff(1) <= 1.0
    assert 2.0 <= policy.backoff(3) <= 4.0
    assert 2.5 <= policy.backoff(10) <= 5.0


def test_which_statuses_retry() -> None:
    assert all(is_retryable_status(s) for s in (408, 429, 500, 502, 503, 504))
    assert not any(is_retryable_status(s) for s in (400, 401, 403, 404, 409, 422))
