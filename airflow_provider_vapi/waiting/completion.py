"""When a wait on Vapi calls is over, and the event it ends with.

The completion rule (:func:`is_settled`) and the event (:class:`WaitEvent`) are shared by every
way of waiting: ``CallStatusTrigger`` in the triggerer, the sensor and the operator in a worker
(:mod:`airflow_provider_vapi.waiting.task`), and ``VapiCallEventTrigger``, which delivers a call once
the same rule calls it settled. They live here, below all of them, so that none of them imports
another to learn when a call is done. :mod:`airflow_provider_vapi.waiting.task` re-exports them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from airflow_provider_vapi.models import Call
from airflow_provider_vapi.results import AwaitedResults

DEFAULT_ANALYSIS_GRACE_PERIOD = 60.0


def is_settled(
    call: Call,
    grace_period: float,
    awaited: AwaitedResults | None = None,
    now: datetime | None = None,
) -> bool:
    """True when waiting longer cannot change what downstream tasks will read: the call ended and
    ``awaited`` (unknown configuration when ``None``) arrived, or the grace period passed since it
    ended (or since ``awaited.requested_at``, for a re-extraction of calls that ended long ago)."""
    if not call.is_ended:
        return False
    awaited = awaited or AwaitedResults()
    if awaited.arrived(call):
        return True
    ended_at = call.ended_at or call.updated_at
    if ended_at is None:
        return True
    start = ended_at if ended_at.tzinfo else ended_at.replace(tzinfo=UTC)
    if awaited.requested_at is not None:
        start = max(start, awaited.requested_at)
    return ((now or datetime.now(UTC)) - start).total_seconds() >= grace_period


class WaitStatus(StrEnum):
    SUCCESS = "success"  #: every call settled
    TIMEOUT = "timeout"  #: the deadline passed; ``pending`` were still not settled
    ERROR = "error"  #: the wait cannot go on (``message`` says why)


@dataclass(frozen=True)
class WaitEvent:
    """How a wait ended: small on purpose (the task re-reads the calls, transcripts and all).

    :meth:`to_event` is the ``TriggerEvent`` payload; :meth:`from_event` reads it back in
    ``execute_complete``. The keys are the ones the trigger has always sent, so a task deferred by
    an older release resumes under a newer one.
    """

    status: WaitStatus
    call_ids: list[str]
    message: str = ""
    pending: list[str] = field(default_factory=list)

    def to_event(self) -> dict[str, Any]:
        return {
            "status": self.status.value,
            "message": self.message,
            "call_ids": list(self.call_ids),
            "pending": list(self.pending),
        }

    @classmethod
    def from_event(cls, event: Mapping[str, Any]) -> WaitEvent:
        try:
            status = WaitStatus(str(event.get("status")))
        except ValueError:
            status = WaitStatus.ERROR
        return cls(
            status=status,
            call_ids=[str(c) for c in event.get("call_ids") or []],
            message=str(event.get("message") or ""),
            pending=[str(c) for c in event.get("pending") or []],
        )


__all__ = ["DEFAULT_ANALYSIS_GRACE_PERIOD", "WaitEvent", "WaitStatus", "is_settled"]
