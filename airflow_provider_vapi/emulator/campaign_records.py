"""A campaign's record, its contacts, and their wire forms (``Campaign``, ``CampaignSummary``,
``CampaignContactWithOutcome``), as Vapi's ``/v2/campaign`` routes answer them.

A campaign keeps its settings (``config``: what ``CreateCampaignDTO`` gave, without the customers)
and one :class:`Contact` per customer, in upload order (``position``, also the dial order). The
customers of ``customers`` and of each ``dialPlan`` entry live on the contacts only, and are put
back in place when the campaign is rendered. The state machine is in :mod:`.campaigns`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from .constants import ORG_ID
from .outcomes import VOICEMAIL
from .records import CallRecord, iso

CAMPAIGN_STATUSES = ("scheduled", "in-progress", "ended", "cancelled", "archived")
#: The contact statuses, in the spec's declaration order (what ``sortBy=status`` sorts by).
CONTACT_STATUSES = (
    "contact.pending",
    "contact.dispatched",
    "contact.completed",
    "contact.failed",
    "contact.skipped",
    "contact.predial-failed",
)
PENDING, DISPATCHED, COMPLETED, FAILED, SKIPPED, PREDIAL_FAILED = CONTACT_STATUSES
#: ``CampaignContactCounters`` keys, by contact status.
COUNTER_KEYS = dict(
    zip(
        CONTACT_STATUSES,
        ("pending", "dispatched", "completed", "failed", "skipped", "predialFailed"),
        strict=True,
    )
)
ENDED_SUCCESS = "campaign.ended.success"
#: How a cancelled campaign ended, by the status it had when it was cancelled.
ENDED_BY_USER = {
    "scheduled": "campaign.scheduled.ended-by-user",
    "in-progress": "campaign.in-progress.ended-by-user",
}
#: A campaign still at work (it can be cancelled; its settings can change while ``scheduled``).
LIVE_STATUSES = ("scheduled", "in-progress")
DEFAULT_MAX_CONCURRENCY = 10
#: The settings ``CampaignSummary`` carries (``Campaign`` has these, ``workflowId``, ``dialPlan``
#: and ``customers``).
SUMMARY_FIELDS = (
    "name",
    "assistantId",
    "squadId",
    "phoneNumberId",
    "schedulePlan",
    "maxConcurrency",
    "assistantOverrides",
    "squadOverrides",
    "server",
    "serverMessages",
    "predialPlan",
)
#: ``Campaign.callsCounter*``: the campaign's calls by their status now (``InProgress``: ringing,
#: talking or forwarding; ``EndedVoicemail``: those of ``Ended`` that ended ``voicemail``).
_CALL_COUNTERS = {
    "scheduled": "callsCounterScheduled",
    "queued": "callsCounterQueued",
    "ended": "callsCounterEnded",
}
_IN_PROGRESS_COUNTER = "callsCounterInProgress"
_VOICEMAIL_COUNTER = "callsCounterEndedVoicemail"


@dataclass(slots=True)
class Contact:
    """One customer of a campaign: who, from which line, and what became of it."""

    id: str
    position: int
    customer: dict[str, Any]
    #: The ``phoneNumberId`` it is called from, and the ``dialPlan`` entry it came from (None:
    #: the campaign's ``customers``).
    line: str
    entry: int | None
    status: str = PENDING
    call_id: str | None = None
    dispatched_ms: int | None = None
    ended_reason: str | None = None
    #: A human picked up its call (not voicemail; counted in ``callMetrics.connected``).
    connected: bool = False

    def to_wire(self) -> dict[str, Any]:
        """The ``CampaignContactWithOutcome``."""
        out: dict[str, Any] = {"id": self.id, "number": self.customer.get("number"), "status": self.status}
        if self.customer.get("name") is not None:
            out["name"] = self.customer["name"]
        if self.call_id is not None:
            out["callId"] = self.call_id
        if self.dispatched_ms is not None:
            out["dispatchedAt"] = iso(self.dispatched_ms)
        if self.ended_reason is not None:
            out["endedReason"] = self.ended_reason
        return out

    def to_row(self, campaign_id: str) -> dict[str, Any]:
        """Everything needed to restore the contact (persistence)."""
        row = {f.name: getattr(self, f.name) for f in fields(self)}
        row["campaignId"] = campaign_id
        return row

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Contact:
        """The contact a :meth:`to_row` dict describes."""
        return cls(**{f.name: row[f.name] for f in fields(cls) if f.name in row})


@dataclass(slots=True)
class CampaignRecord:
    """One campaign: its settings, its contacts, and where it is now."""

    id: str
    seq: int
    created_ms: int
    updated_ms: int
    config: dict[str, Any]
    #: The emulator's URL as the campaign's creator reached it (that of its calls' control URLs).
    base_url: str
    status: str = "scheduled"
    ended_reason: str | None = None
    #: ``schedulePlan.earliestAt`` while the campaign waits for it; ``latestAt`` if given.
    start_ms: int | None = None
    deadline_ms: int | None = None
    #: Not persisted with the record (contacts have rows of their own; the rest is derived).
    contacts: list[Contact] = field(default_factory=list)
    #: Contacts before ``cursor`` have left ``pending`` (they are dialled in position order).
    cursor: int = 0
    live: set[str] = field(default_factory=set)
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CONTACT_STATUSES, 0))
    connected: int = 0

    @property
    def max_concurrency(self) -> int:
        """How many of its calls may be under way at once."""
        return int(self.config.get("maxConcurrency") or DEFAULT_MAX_CONCURRENCY)

    def settings(self) -> dict[str, Any]:
        """Its ``CreateCampaignDTO`` settings, customers put back (in ``customers`` or in their
        ``dialPlan`` entries)."""
        out = dict(self.config)
        if "dialPlan" in out:
            plan = [{**entry, "customers": []} for entry in out["dialPlan"]]
            for contact in self.contacts:
                plan[contact.entry or 0]["customers"].append(contact.customer)
            out["dialPlan"] = plan
        else:
            out["customers"] = [contact.customer for contact in self.contacts]
        return out

    def summary(self, counters: bool) -> dict[str, Any]:
        """The ``CampaignSummary`` (``counters``: with ``contactCounters`` and ``callMetrics``)."""
        out = self._head()
        out.update((key, self.config[key]) for key in SUMMARY_FIELDS if key in self.config)
        if counters:
            out["contactCounters"] = {COUNTER_KEYS[s]: n for s, n in self.counts.items()}
            dialed = self.counts[DISPATCHED] + self.counts[COMPLETED]
            out["callMetrics"] = {"dialed": dialed, "connected": self.connected}
        return out

    def to_wire(self, calls: Mapping[str, CallRecord]) -> dict[str, Any]:
        """The ``Campaign``: every setting, the map of its calls and their counters (``calls``:
        the emulator's calls by id, for their status now)."""
        out = self._head()
        out.update(self.settings())
        details: dict[str, Any] = {}
        counters = dict.fromkeys((*_CALL_COUNTERS.values(), _IN_PROGRESS_COUNTER, _VOICEMAIL_COUNTER), 0)
        for contact in self.contacts:
            if contact.call_id is None:
                continue
            rec = calls.get(contact.call_id)
            status = rec.status if rec is not None else "ended"  # a deleted call counts as ended
            detail = {"status": status, "contactId": contact.id, "number": contact.customer.get("number")}
            if status == "ended" and contact.ended_reason is not None:
                detail["endedReason"] = contact.ended_reason
                counters[_VOICEMAIL_COUNTER] += contact.ended_reason == VOICEMAIL
            counters[_CALL_COUNTERS.get(status, _IN_PROGRESS_COUNTER)] += 1
            details[contact.call_id] = detail
        out["calls"] = details
        out.update(counters)
        return out

    def _head(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "orgId": ORG_ID,
            "createdAt": iso(self.created_ms),
            "updatedAt": iso(self.updated_ms),
            "status": self.status,
        }
        if self.ended_reason is not None:
            out["endedReason"] = self.ended_reason
        return out

    def to_row(self) -> dict[str, Any]:
        """Everything of the record but its contacts and what derives from them (persistence)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in _DERIVED}

    @classmethod
    def from_row(cls, row: dict[str, Any], contacts: list[Contact]) -> CampaignRecord:
        """The record a :meth:`to_row` dict and its contacts (any order) describe."""
        rec = cls(**{f.name: row[f.name] for f in fields(cls) if f.name in row and f.name not in _DERIVED})
        rec.contacts = sorted(contacts, key=lambda c: c.position)
        for contact in rec.contacts:
            rec.counts[contact.status] += 1
            rec.connected += contact.connected
            if contact.status == DISPATCHED and contact.call_id is not None:
                rec.live.add(contact.call_id)
        rec.cursor = next((c.position for c in rec.contacts if c.status == PENDING), len(rec.contacts))
        return rec


_DERIVED = frozenset({"contacts", "cursor", "live", "counts", "connected"})
