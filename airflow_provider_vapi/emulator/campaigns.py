"""Campaigns (``/v2/campaign``): each customer a contact, dialled in upload order with at most
``maxConcurrency`` of the campaign's calls under way at any moment, each call a real emulator call.

A campaign is ``scheduled`` until ``schedulePlan.earliestAt`` (at once without one), then
``in-progress``: it dials pending contacts (``contact.pending`` -> ``contact.dispatched``) until
``maxConcurrency`` of its calls are not yet ended; when one ends, its contact becomes
``contact.completed`` (``contact.failed`` if the call never started: a ``call.start.error-*``, or
refused at dispatch without a call) and the next contact is dialled at that same instant. At
``schedulePlan.latestAt`` pending contacts become ``contact.skipped``. With nothing pending or
dispatched the campaign is ``ended`` (``campaign.ended.success``). Cancelling (``PATCH`` ``status``,
``DELETE``) skips every pending contact at once and lets the calls under way finish; the campaign
is ``cancelled`` from that instant.

Time is the engine's: nothing runs in a background thread. A campaign has at most two events of
its own (``start`` at ``earliestAt``, ``deadline`` at ``latestAt``) on this book's heap; everything
else follows from its calls' ends, which the :class:`.lifecycle.CallBook` reports at the time they
happen (:meth:`CampaignBook.call_ended`). :meth:`CampaignBook.advance` applies both heaps' events
in time order. Like the call book, nothing here reads the clock or takes a lock.
"""

from __future__ import annotations

import heapq
import uuid
from collections.abc import Callable
from typing import Any

from .campaign_config import (
    AUDIENCE,
    Member,
    call_body,
    check_settings,
    customer_problem,
    given,
    kept_config,
    lines,
    overlay,
)
from .campaign_records import (
    COMPLETED,
    DISPATCHED,
    ENDED_BY_USER,
    ENDED_SUCCESS,
    FAILED,
    LIVE_STATUSES,
    PENDING,
    SKIPPED,
    CampaignRecord,
    Contact,
)
from .errors import ApiError, bad_request, not_found
from .lifecycle import CallBook
from .outcomes import CALL_DELETED, START_ERROR_PREFIX, VOICEMAIL, outcome_for
from .records import CallRecord
from .store import SQLiteStore
from .validation import parse_iso

#: ``(call body without customer, its customers) -> effective assistant``; a 400 when the body
#: names an unknown assistant, phone number or structured output.
CheckCall = Callable[[dict[str, Any], list[dict[str, Any]]], dict[str, Any]]
#: ``(call body, effective assistant, at, base URL) -> the call``, placed as ``POST /call`` does.
PlaceCall = Callable[[dict[str, Any], dict[str, Any], int, str], CallRecord]

#: The ``endedReason`` of a contact refused at dispatch (no call made), by the refusal's message.
_REFUSALS = (
    ("Couldn't Get Assistant", "call.start.error-get-assistant"),
    ("Couldn't Get Phone Number", "call.start.error-get-phone-number"),
)
_REFUSED_CUSTOMER = "call.start.error-get-customer"
_REFUSED = "call.start.error-get-resources-validation"


def _ms(value: Any) -> int | None:
    parsed = parse_iso(value)
    return int(parsed.timestamp() * 1000) if parsed is not None else None


class CampaignBook:
    """Every campaign, the calls it is waiting for, its pending events and what persistence owes."""

    def __init__(self, book: CallBook, check: CheckCall, place: PlaceCall) -> None:
        self.book = book
        book.on_end = self.call_ended
        self._check = check
        self._place = place
        self.campaigns: dict[str, CampaignRecord] = {}
        #: call id -> (campaign id, contact position), for the calls not yet ended.
        self._by_call: dict[str, tuple[str, int]] = {}
        self._heap: list[tuple[int, int, str, str]] = []
        self._seq = 0
        self._dirty: set[str] = set()
        self._dirty_contacts: dict[str, tuple[str, Contact]] = {}
        self._dropped_contacts: list[str] = []
        self._dropped: list[str] = []

    # -- time -----------------------------------------------------------------------------------

    def advance(self, now: int) -> None:
        """Apply every event due by ``now``, the calls' and the campaigns', in time order."""
        heap = self._heap
        while heap and heap[0][0] <= now:
            at, _, campaign_id, kind = heapq.heappop(heap)
            self.book.advance(at)
            camp = self.campaigns.get(campaign_id)
            if camp is None:
                continue
            if kind == "start" and camp.start_ms == at and camp.status == "scheduled":
                camp.start_ms = None
                self._start(camp, at)
            elif kind == "deadline" and camp.deadline_ms == at and camp.status in LIVE_STATUSES:
                self._skip_pending(camp, at)
                self._maybe_end(camp, at)
        self.book.advance(now)

    def _push(self, at: int, camp: CampaignRecord, kind: str) -> None:
        heapq.heappush(self._heap, (at, camp.seq, camp.id, kind))

    def _schedule(self, camp: CampaignRecord, now: int) -> None:
        """Wait for ``earliestAt`` (or start now) and plan the ``latestAt`` deadline."""
        plan = camp.config.get("schedulePlan") or {}
        earliest, camp.deadline_ms = _ms(plan.get("earliestAt")), _ms(plan.get("latestAt"))
        if camp.deadline_ms is not None:
            self._push(camp.deadline_ms, camp, "deadline")
        if earliest is not None and earliest > now:
            camp.status, camp.start_ms = "scheduled", earliest
            self._push(earliest, camp, "start")
        else:
            camp.start_ms = None
            self._start(camp, now)

    # -- the Vapi API ---------------------------------------------------------------------------

    def create(self, body: dict[str, Any], now: int, base_url: str) -> dict[str, Any]:
        """``POST /v2/campaign`` (the DTO checks passed): the ``Campaign``."""
        settings = given(body)
        source_id = body.get("duplicateFromCampaignId")
        if source_id is not None:
            source = self.campaigns.get(source_id)
            if source is None:
                raise bad_request(
                    f"Couldn't Get Campaign. `duplicateFromCampaignId` {source_id} Does Not Exist."
                )
            settings = overlay(source.settings(), settings)
        members = self._accept(settings)
        self._seq += 1
        camp = CampaignRecord(str(uuid.uuid4()), self._seq, now, now, kept_config(settings), base_url)
        self.campaigns[camp.id] = camp
        self._dirty.add(camp.id)
        self._enlist(camp, members)
        self._schedule(camp, now)
        return camp.to_wire(self.book.calls)

    def get(self, campaign_id: str) -> CampaignRecord:
        """The campaign ``campaign_id``; a 404 when there is none."""
        camp = self.campaigns.get(campaign_id)
        if camp is None:
            raise not_found("Campaign")
        return camp

    def update(self, campaign_id: str, body: dict[str, Any], now: int) -> dict[str, Any]:
        """``PATCH /v2/campaign/{id}`` (the DTO checks passed): settings while ``scheduled``,
        ``status`` (``cancelled``, or ``ended``, its V1 alias) at any time; the ``Campaign``."""
        camp = self.get(campaign_id)
        changes = given(body)
        cancel = changes.pop("status", None) is not None
        if changes and camp.status != "scheduled":
            names = ", ".join(f"`{k}`" for k in changes)
            raise bad_request(
                f"Couldn't Update Campaign. {names} Can Only Be Updated While The Campaign Is "
                f"`scheduled`; It Is `{camp.status}`: Only `status` Can Change Now."
            )
        if changes:
            self._reconfigure(camp, changes, now)
        if cancel:
            self.cancel(camp, now)
        return camp.to_wire(self.book.calls)

    def delete(self, campaign_id: str, now: int) -> dict[str, Any]:
        """``DELETE /v2/campaign/{id}``: cancelled if still at work, then gone (its calls under
        way go on as calls of no campaign); the ``Campaign`` as it was last."""
        camp = self.get(campaign_id)
        self.cancel(camp, now)
        answer = camp.to_wire(self.book.calls)
        del self.campaigns[campaign_id]
        for call_id in camp.live:
            self._by_call.pop(call_id, None)
        self._dirty.discard(campaign_id)
        self._dropped.append(campaign_id)
        self._dropped_contacts.extend(c.id for c in camp.contacts)
        return answer

    def cancel(self, camp: CampaignRecord, at: int) -> None:
        """Stop ``camp`` at ``at``: pending contacts skipped, calls under way left to finish (no-op
        once it has ended or been cancelled)."""
        if camp.status not in LIVE_STATUSES:
            return
        camp.ended_reason = ENDED_BY_USER[camp.status]
        camp.status, camp.start_ms = "cancelled", None
        self._skip_pending(camp, at)
        self._touch(camp, at)

    # -- settings -------------------------------------------------------------------------------

    def _accept(self, settings: dict[str, Any]) -> list[Member]:
        """The audience of ``settings`` once everything its calls name resolves; a 400 otherwise."""
        members = check_settings(settings)
        for body, customers in lines(settings, members):
            self._check(body, customers)
        return members

    def _reconfigure(self, camp: CampaignRecord, changes: dict[str, Any], now: int) -> None:
        """New settings for a ``scheduled`` campaign (every contact still pending)."""
        settings = overlay(camp.settings(), changes)
        members = self._accept(settings)
        camp.config = kept_config(settings)
        if any(key in changes for key in AUDIENCE):
            self._enlist(camp, members)
        self._touch(camp, now)
        if "schedulePlan" in changes:
            self._schedule(camp, now)

    def _enlist(self, camp: CampaignRecord, members: list[Member]) -> None:
        """Make ``members`` the contacts of ``camp``, all pending (replacing any it had)."""
        self._dropped_contacts.extend(c.id for c in camp.contacts)
        for old in camp.contacts:
            self._dirty_contacts.pop(old.id, None)
        camp.contacts = [
            Contact(str(uuid.uuid4()), position, customer, line, entry)
            for position, (_, customer, line, entry) in enumerate(members)
        ]
        camp.cursor, camp.connected = 0, 0
        camp.counts = dict.fromkeys(camp.counts, 0)
        camp.counts[PENDING] = len(camp.contacts)
        self._dirty_contacts.update((c.id, (camp.id, c)) for c in camp.contacts)

    # -- dialling -------------------------------------------------------------------------------

    def _start(self, camp: CampaignRecord, at: int) -> None:
        camp.status = "in-progress"
        self._touch(camp, at)
        self._fill(camp, at)

    def _fill(self, camp: CampaignRecord, at: int) -> None:
        """Dial pending contacts while fewer than ``maxConcurrency`` calls are under way (none
        once ``latestAt`` has passed); ends the campaign when nothing is left."""
        if camp.deadline_ms is not None and at >= camp.deadline_ms:
            self._skip_pending(camp, at)
        limit = camp.max_concurrency
        while camp.cursor < len(camp.contacts) and len(camp.live) < limit:
            contact = camp.contacts[camp.cursor]
            camp.cursor += 1
            self._dispatch(camp, contact, at)
        self._maybe_end(camp, at)

    def _dispatch(self, camp: CampaignRecord, contact: Contact, at: int) -> None:
        """Place ``contact``'s call at ``at`` (or fail the contact when its call is refused)."""
        body = call_body(camp.config, contact, camp.id)
        if customer_problem(contact.customer, "customer.") is not None:
            self._refuse(camp, contact, _REFUSED_CUSTOMER, at)
            return
        try:
            rec = self._place(body, self._check(body, [contact.customer]), at, camp.base_url)
        except ApiError as exc:
            message = str(exc.message)
            reason = next((r for prefix, r in _REFUSALS if message.startswith(prefix)), _REFUSED)
            self._refuse(camp, contact, reason, at)
            return
        contact.call_id, contact.dispatched_ms = rec.id, at
        camp.live.add(rec.id)
        self._by_call[rec.id] = (camp.id, contact.position)
        self._set(camp, contact, DISPATCHED, at)
        if rec.status == "ended":  # it could not start: ended as it was created
            self._finish(camp, contact, rec, at)

    def _refuse(self, camp: CampaignRecord, contact: Contact, reason: str, at: int) -> None:
        contact.ended_reason = reason
        self._set(camp, contact, FAILED, at)

    def call_ended(self, rec: CallRecord, at: int) -> None:
        """The call book's news: ``rec`` ended (or was deleted) at ``at``. Its contact is done and,
        if the campaign is still dialling, the next contact is dialled at ``at``."""
        found = self._by_call.get(rec.id)
        camp = self.campaigns.get(found[0]) if found is not None else None
        if found is None or camp is None:
            return
        contact = camp.contacts[found[1]]
        if contact.call_id != rec.id or contact.status != DISPATCHED:
            return
        self._finish(camp, contact, rec, at)
        if camp.status == "in-progress":
            self._fill(camp, at)

    def _finish(self, camp: CampaignRecord, contact: Contact, rec: CallRecord, at: int) -> None:
        """``contact``'s call ``rec`` is over: completed, or failed if it never started."""
        camp.live.discard(rec.id)
        self._by_call.pop(rec.id, None)
        reason = rec.ended_reason if rec.status == "ended" and rec.ended_reason else CALL_DELETED
        contact.ended_reason = reason
        failed = rec.started_ms is None and reason.startswith(START_ERROR_PREFIX)
        human = outcome_for(contact.customer.get("number")).ended_reason != VOICEMAIL
        if not failed and rec.answered_ms is not None and human:
            contact.connected = True
            camp.connected += 1
        self._set(camp, contact, FAILED if failed else COMPLETED, at)

    def _skip_pending(self, camp: CampaignRecord, at: int) -> None:
        for contact in camp.contacts[camp.cursor :]:
            self._set(camp, contact, SKIPPED, at)
        camp.cursor = len(camp.contacts)

    def _maybe_end(self, camp: CampaignRecord, at: int) -> None:
        if camp.status == "in-progress" and camp.cursor >= len(camp.contacts) and not camp.live:
            camp.status, camp.ended_reason = "ended", ENDED_SUCCESS
            self._touch(camp, at)

    def _set(self, camp: CampaignRecord, contact: Contact, status: str, at: int) -> None:
        camp.counts[contact.status] -= 1
        camp.counts[status] += 1
        contact.status = status
        self._dirty_contacts[contact.id] = (camp.id, contact)
        self._touch(camp, at)

    def _touch(self, camp: CampaignRecord, at: int) -> None:
        camp.updated_ms = at
        self._dirty.add(camp.id)

    # -- persistence ----------------------------------------------------------------------------

    def flush(self, store: SQLiteStore | None) -> None:
        """Save what changed since the last flush (forget it without a store)."""
        dirty, contacts = self._dirty, self._dirty_contacts
        dropped, dropped_contacts = self._dropped, self._dropped_contacts
        self._dirty, self._dirty_contacts, self._dropped, self._dropped_contacts = set(), {}, [], []
        if store is None:
            return
        store.save(
            "campaigns", [(cid, self.campaigns[cid].to_row()) for cid in dirty if cid in self.campaigns]
        )
        store.save("campaign_contacts", [(key, c.to_row(cid)) for key, (cid, c) in contacts.items()])
        store.delete_many("campaigns", dropped)
        store.delete_many("campaign_contacts", dropped_contacts)

    def restore(self, rows: list[dict[str, Any]], contact_rows: list[dict[str, Any]]) -> None:
        """Rebuild campaigns, the calls they wait for and their events from saved rows (after
        the call book has been restored)."""
        contacts: dict[str, list[Contact]] = {}
        for row in contact_rows:
            contacts.setdefault(row["campaignId"], []).append(Contact.from_row(row))
        for row in sorted(rows, key=lambda r: r["seq"]):
            camp = CampaignRecord.from_row(row, contacts.get(row["id"], []))
            self.campaigns[camp.id] = camp
            self._seq = max(self._seq, camp.seq)
            for contact in camp.contacts:
                if contact.status == DISPATCHED and contact.call_id is not None:
                    self._by_call[contact.call_id] = (camp.id, contact.position)
            if camp.start_ms is not None:
                self._push(camp.start_ms, camp, "start")
            if camp.deadline_ms is not None and camp.status in LIVE_STATUSES:
                self._push(camp.deadline_ms, camp, "deadline")

    def clear(self) -> None:
        """Forget every campaign (the admin reset)."""
        for state in (self.campaigns, self._by_call, self._dirty, self._dirty_contacts):
            state.clear()
        self._heap.clear()
        self._dropped.clear()
        self._dropped_contacts.clear()
