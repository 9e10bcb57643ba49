"""When a wait on a call is over, and whether its outcome fails the task.

Shared by the sensor, the operator's own wait and the trigger, so all three agree. A call is
*settled* when it has ``ended`` and its analysis has arrived, or cannot arrive (no conversation), or
the grace period after ``endedAt`` has passed: Vapi computes the analysis after hang-up.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, datetime

from airflow_provider_vapi.exceptions import VapiCallFailedError
from airflow_provider_vapi.hooks import VapiHook
from airflow_provider_vapi.models import Call, CallOutcome

DEFAULT_ANALYSIS_GRACE_PERIOD = 60.0
DEFAULT_FAILURE_OUTCOMES: tuple[str, ...] = (CallOutcome.ERROR.value,)


def analysis_expected(call: Call) -> bool:
    """Vapi analyses every call with two messages or more, whatever its outcome (a conversation
    that was cancelled or broke off is analysed too); fewer means no analysis will come."""
    artifact = call.artifact if isinstance(call.artifact, dict) else {}
    messages = artifact.get("messages") or getattr(call, "messages", None) or []
    return len(messages) >= 2


def is_settled(call: Call, analysis_grace_period: float, now: datetime | None = None) -> bool:
    """True when waiting longer cannot change what downstream tasks will read."""
    if not call.is_ended:
        return False
    if call.has_analysis or not analysis_expected(call):
        return True
    ended_at = call.ended_at or call.updated_at
    if ended_at is None:
        return True
    ended = ended_at if isinstance(ended_at, datetime) else datetime.fromisoformat(str(ended_at))
    if ended.tzinfo is None:
        ended = ended.replace(tzinfo=UTC)
    return ((now or datetime.now(UTC)) - ended).total_seconds() >= analysis_grace_period


def normalize_outcomes(outcomes: Collection[str | CallOutcome]) -> frozenset[CallOutcome]:
    """Outcome names from a task parameter, checked: a typo must not silently pass a failed call."""
    result = set()
    for name in outcomes:
        try:
            result.add(CallOutcome(name))
        except ValueError:
            valid = ", ".join(o.value for o in CallOutcome)
            raise ValueError(f"{name!r} is not a call outcome; use some of: {valid}") from None
    return frozenset(result)


def check_outcome(call: Call, failure_outcomes: frozenset[CallOutcome]) -> None:
    """Raise ``VapiCallFailedError`` when the call's outcome is one the task counts as failure."""
    outcome = call.outcome
    if outcome not in failure_outcomes:
        return
    detail = f": {call.ended_message.rstrip('.')}" if call.ended_message else ""
    raise VapiCallFailedError(
        f"Vapi call {call.id} ended with {call.ended_reason!r} (outcome {outcome.value}){detail}. "
        f"Its page: {VapiHook.dashboard_url(call.id)}",
        call_id=call.id,
        ended_reason=call.ended_reason,
        ended_message=call.ended_message,
        outcome=outcome.value,
    )
