"""The completion rule: ended, and analysed or past the grace period (or no analysis can come)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from airflow_provider_vapi.exceptions import VapiCallFailedError
from airflow_provider_vapi.models import Call, CallOutcome
from airflow_provider_vapi.waiting.task import check_outcome, is_settled, normalize_outcomes

ENDED = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def call(reason: str, messages: int, analysis: dict | None = None, status: str = "ended") -> Call:
    body = {
        "id": "c1",
        "orgId": "o",
        "createdAt": "2026-11-24T11:59:00Z",
        "updatedAt": "2026-11-24T12:00:00Z",
        "status": status,
        "endedReason": reason,
        "endedAt": "2026-11-24T12:00:00Z",
        "artifact": {"messages": [{"role": "bot", "message": "hi"}] * messages},
    }
    if analysis is not None:
        body["analysis"] = analysis
    return Call.model_validate(body)


@pytest.mark.parametrize("reason", ["customer-ended-call", "manually-canceled", "pipeline-error-openai-llm-failed"])
def test_a_conversation_waits_for_its_analysis_whatever_the_outcome(reason: str) -> None:
    waiting = call(reason, messages=4)
    assert not is_settled(waiting, 60, now=ENDED + timedelta(seconds=5))
    assert is_settled(waiting, 60, now=ENDED + timedelta(seconds=61)), "the grace period ends the wait"
    assert is_settled(call(reason, messages=4, analysis={"summary": "ok"}), 60, now=ENDED)


@pytest.mark.parametrize("reason", ["customer-busy", "customer-did-not-answer", "customer-ended-call"])
def test_fewer_than_two_messages_means_no_analysis_will_come(reason: str) -> None:
    assert is_settled(call(reason, messages=1), 60, now=ENDED)


def test_a_live_call_is_never_settled() -> None:
    assert not is_settled(call("", messages=4, status="in-progress"), 0, now=ENDED + timedelta(days=1))


def test_outcome_policy() -> None:
    failing = normalize_outcomes(["error", "not_reached"])
    with pytest.raises(VapiCallFailedError, match="customer-busy") as info:
        check_outcome(call("customer-busy", messages=0), failing)
    assert info.value.call_id == "c1" and info.value.outcome == CallOutcome.NOT_REACHED
    check_outcome(call("voicemail", messages=0), failing)
    with pytest.raises(ValueError, match="not a call outcome"):
        normalize_outcomes(["errors"])
