"""What Vapi answers about a campaign (``Campaign``, ``CampaignSummary``, its contacts): lenient
pydantic models, snake_case in Python, camelCase on the wire, like :mod:`airflow_provider_vapi.models`."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from airflow_provider_vapi.models.outcomes import CallOutcome, classify_ended_reason

#: Campaign statuses after which no call is placed any more (``archived`` comes after either).
OVER: Final = frozenset({"ended", "cancelled", "archived"})
#: Contact statuses that never got a call: the outcome of those contacts is theirs, not a call's.
_NO_CALL: Final[dict[str, CallOutcome]] = {
    "contact.pending": CallOutcome.UNKNOWN,
    "contact.skipped": CallOutcome.CANCELED,
    "contact.failed": CallOutcome.ERROR,
    "contact.predial-failed": CallOutcome.NOT_REACHED,
}


class _Wire(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow")


class ContactCounters(_Wire):
    """``contactCounters``: contacts per status; ``pending + dispatched`` is what is left to do."""

    pending: int = 0
    dispatched: int = 0
    completed: int = 0
    failed: int = 0
    skipped: int = 0
    predial_failed: int = 0

    @property
    def total(self) -> int:
        return (
            self.pending + self.dispatched + self.completed + self.failed + self.skipped + self.predial_failed
        )

    @property
    def reached(self) -> int:
        """Contacts a call went out to (dispatched or done with one)."""
        return self.dispatched + self.completed


class CallMetrics(_Wire):
    """``callMetrics``: contacts a call was placed for (``dialed``), and answered by a human."""

    dialed: int = 0
    connected: int = 0


class Campaign(_Wire):
    """A campaign as ``GET /v2/campaign/{id}?includeCounters=true`` (``CampaignSummary``) or a
    create/cancel answer (``Campaign``) has it."""

    id: str
    name: str = ""
    status: str = ""
    ended_reason: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    max_concurrency: float | None = None
    contact_counters: ContactCounters | None = None
    call_metrics: CallMetrics | None = None

    @property
    def is_over(self) -> bool:
        """No call will be placed any more (calls already live may still be finishing)."""
        return self.status in OVER

    @property
    def counters(self) -> ContactCounters:
        return self.contact_counters or ContactCounters()

    @property
    def metrics(self) -> CallMetrics:
        return self.call_metrics or CallMetrics()

    def summary(self) -> dict[str, Any]:
        """The small, JSON-safe result a task returns (XCom): never the contacts."""
        return {
            "campaign_id": self.id,
            "name": self.name,
            "status": self.status,
            "ended_reason": self.ended_reason,
            "contacts": self.counters.total,
            "counters": self.counters.model_dump(),
            "call_metrics": self.metrics.model_dump(),
        }


class CampaignContact(_Wire):
    """``CampaignContactWithOutcome``: one person of a campaign and what became of them."""

    id: str
    number: str | None = None
    name: str | None = None
    status: str = ""
    call_id: str | None = None
    dispatched_at: datetime | None = None
    ended_reason: str | None = None

    @property
    def outcome(self) -> CallOutcome:
        """The outcome class (as for calls): of the call's ``endedReason`` when it has one, else of
        the contact's status (skipped: ``canceled``; failed to dispatch: ``error``)."""
        if self.ended_reason:
            return classify_ended_reason(self.ended_reason)
        return _NO_CALL.get(self.status, CallOutcome.UNKNOWN)


class ContactPage(_Wire):
    """``CampaignContactPaginatedResponse``."""

    results: list[CampaignContact] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)

    @property
    def has_next(self) -> bool:
        meta = self.metadata
        if "hasNextPage" in meta:
            return bool(meta["hasNextPage"])
        pages = meta.get("totalPages")
        return isinstance(pages, int | float) and meta.get("currentPage", 1) < pages


class CampaignPage(_Wire):
    """``CampaignSummaryPaginatedResponse``."""

    results: list[Campaign] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)

    @property
    def has_next(self) -> bool:
        return ContactPage(metadata=self.metadata).has_next
