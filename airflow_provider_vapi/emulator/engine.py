"""The emulator's engine: one object holding all its state behind one lock, answering the Vapi
API and the admin API, and saving calls, assistants and structured outputs to the state file.

The pieces live elsewhere: the call state machine in :mod:`.lifecycle`, placing calls in
:mod:`.creation`, assistants / phone numbers / customers in :mod:`.directory`, saved structured
outputs and their runs in :mod:`.structured_outputs`, campaigns in :mod:`.campaigns`, the call
record and its wire form in :mod:`.records`, the run-time settings in :mod:`.config`. Every public method reads the clock
through :meth:`Engine.now` and applies every due event before it answers.

Vapi's clock (:meth:`Engine.now`) is the wall clock plus ``clockOffsetSeconds``: every stamp and time
filter reads it; a change shifts the calls' pending steps with it (:meth:`.lifecycle.CallBook.shift`).
"""

from __future__ import annotations

import copy
import heapq
import json
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from .campaign_pages import campaigns_page, contacts_page
from .campaigns import CampaignBook
from .config import EngineConfig
from .constants import ASSISTANT_ID, PHONE_NUMBER_ID
from .creation import place_call, place_calls
from .directory import Directory, new_assistant
from .errors import ApiError, bad_request, not_found
from .lifecycle import CallBook
from .listing import ContactQuery, ListQuery
from .monitor import MonitorUrl, authentication_enabled
from .outcomes import MANUALLY_CANCELED, SCHEDULED_CALL_DELETED
from .recordings import ARTIFACT_NOT_FOUND
from .records import CallRecord, iso
from .seeding import inbound_body, inject_inbound, parse_seed, seed_calls
from .store import SQLiteStore
from .structured_outputs import OutputLibrary, run_outputs
from .validation import (
    create_call_errors,
    create_campaign_errors,
    run_structured_output_errors,
    update_call_errors,
    update_campaign_errors,
)


class Engine:
    """All state of one emulator; every public method is thread-safe and advances time first."""

    def __init__(self, config: EngineConfig | None = None, state_file: str | None = None) -> None:
        config = config or EngineConfig()
        config.check()
        self._initial_config = copy.deepcopy(config)
        self._lock = threading.RLock()
        self._store = SQLiteStore(state_file) if state_file else None
        self._book = CallBook(config)
        self._campaigns = CampaignBook(self._book, self._check_call, self._place_call)
        self.directory = Directory()
        self.outputs = OutputLibrary()
        if self._store is not None:
            self._load()

    @property
    def config(self) -> EngineConfig:
        """The settings in force (replaced whole by :meth:`configure` and :meth:`reset`)."""
        return self._book.config

    @config.setter
    def config(self, value: EngineConfig) -> None:
        self._book.config = value

    @property
    def calls(self) -> dict[str, CallRecord]:
        """Every call by id."""
        return self._book.calls

    def now(self) -> int:
        """Milliseconds on Vapi's clock: the wall clock plus the configured clock offset."""
        return time.time_ns() // 1_000_000 + self.config.clock_offset_ms

    def advance(self, now: int | None = None) -> None:
        """Apply every event due by ``now`` (default: the clock), in time order."""
        with self._lock:
            self._campaigns.advance(self.now() if now is None else now)
            self._flush()

    # -- persistence --------------------------------------------------------------------------

    def _flush(self) -> None:
        changed = self._book.take_dirty()
        if self._store is not None:
            self._store.save("calls", [(rec.id, rec.to_row()) for rec in changed])
        self._campaigns.flush(self._store)

    def _load(self) -> None:
        assert self._store is not None
        for row in self._store.load("assistants"):
            self.directory.assistants[row["id"]] = row
        self.outputs = OutputLibrary(self._store.load("structured_outputs"))
        records = sorted((CallRecord.from_row(r) for r in self._store.load("calls")), key=lambda r: r.seq)
        self._book.restore(records)
        self._campaigns.restore(self._store.load("campaigns"), self._store.load("campaign_contacts"))
        self.advance()

    def close(self) -> None:
        """Release the state file."""
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None

    # -- admin --------------------------------------------------------------------------------

    def reset(self) -> None:
        """Back to the seeds and the start-up configuration (the state file is emptied too)."""
        with self._lock:
            self._book.clear()
            self._campaigns.clear()
            self.directory = Directory()
            self.outputs = OutputLibrary()
            self.config = copy.deepcopy(self._initial_config)
            if self._store is not None:
                self._store.clear()

    def _current_call(self, call_id: str) -> CallRecord:
        """The call ``call_id`` once time has advanced (hold the lock); a 404 when there is none."""
        self.advance()
        rec = self._book.calls.get(call_id)
        if rec is None:
            raise not_found("Call")
        return rec

    def configure(self, changes: dict[str, Any]) -> None:
        """Change run-time settings (camelCase keys of :meth:`EngineConfig.to_wire`)."""
        with self._lock:
            self.advance()
            before = self.config.clock_offset_ms
            self.config = self.config.changed(changes)
            if self.config.clock_offset_ms != before:
                self._book.shift(self.config.clock_offset_ms - before)
            self._book.admit_waiters(self.now())
            self._flush()

    def end_call(self, call_id: str) -> CallRecord:
        """What ``POST {controlUrl} {"type": "end-call"}`` does: end a live call now."""
        with self._lock:
            rec = self._current_call(call_id)
            if rec.status != "ended":
                self._book.end(rec, self.now(), MANUALLY_CANCELED, None)
            self._flush()
            return rec

    def monitor_locked(self, call_id: str, url: MonitorUrl) -> bool:
        """Whether the call's ``monitor.<url>Url`` wants the public key (:mod:`.monitor`); False
        for an unknown call (the route answers it)."""
        with self._lock:
            rec = self._book.calls.get(call_id)
            return rec is not None and authentication_enabled(rec.assistant, url)

    def backdate_call(self, call_id: str, seconds: float) -> CallRecord:
        """Move a call's timestamps ``seconds`` into the past, as if it had been placed then
        (tests of "the same task cleared an hour later" without waiting an hour)."""
        shift = int(seconds * 1000)
        with self._lock:
            rec = self._current_call(call_id)
            rec.created_ms -= shift
            rec.updated_ms -= shift
            rec.started_ms = None if rec.started_ms is None else rec.started_ms - shift
            rec.ended_ms = None if rec.ended_ms is None else rec.ended_ms - shift
            if rec.outputs_updated_ms is not None:
                rec.outputs_updated_ms -= shift
            self._book.forget_json(rec.id)
            self._flush()
            return rec

    def call_records(self) -> list[CallRecord]:
        """Every call (admin view), oldest first."""
        with self._lock:
            self.advance()
            return sorted(self._book.calls.values(), key=lambda r: r.seq)

    # -- Vapi API: calls ----------------------------------------------------------------------

    def call_json(self, rec: CallRecord, now: int | None = None) -> bytes:
        """The serialized ``Call``, cached until the call changes (the hot path of polling), with
        presigned recording URLs valid from ``now`` (default: the clock)."""
        return self._book.json(rec, self.now() if now is None else now)

    def get_call(self, call_id: str) -> bytes:
        """``GET /call/{id}``."""
        with self._lock:
            return self.call_json(self._current_call(call_id))

    def list_calls(self, query: ListQuery) -> bytes:
        """``GET /call``: newest first by ``createdAt`` (ties: creation order), then ``limit``.

        One pass of integer comparisons over the calls (fast with 100,000 stored), then the
        ``limit`` newest of those that pass; only the calls answered are rendered."""
        (created_lo, created_hi), (updated_lo, updated_hi) = query.ms_ranges()
        wanted = query.equal
        with self._lock:
            self.advance()
            calls = self._book.calls
            candidates: Iterable[CallRecord] = calls.values()
            if "id" in wanted:
                found = calls.get(wanted["id"])
                candidates = [found] if found is not None else []
            picked = [
                r
                for r in candidates
                if created_lo <= r.created_ms <= created_hi and updated_lo <= r.updated_ms <= updated_hi
            ]
            for key in ("assistantId", "phoneNumberId"):
                if key in wanted:
                    picked = [r for r in picked if r.echo.get(key) == wanted[key]]
            newest = heapq.nlargest(query.limit, picked, key=lambda r: (r.created_ms, r.seq))
            now = self.now()
            return b"[" + b",".join(self.call_json(r, now) for r in newest) + b"]"

    def update_call(self, call_id: str, body: dict[str, Any]) -> bytes:
        """``PATCH /call/{id}``: only ``name`` can change."""
        errors = update_call_errors(body)
        if errors:
            raise bad_request(errors)
        with self._lock:
            rec = self._current_call(call_id)
            if "name" in body and body["name"] != rec.echo.get("name"):
                rec.echo["name"] = body["name"]
                self._book.touch(rec, self.now())
            self._flush()
            return self.call_json(rec)

    def delete_call(self, call_id: str) -> bytes:
        """``DELETE /call/{id}``: a scheduled call ends ``scheduled-call-deleted``; others go."""
        with self._lock:
            rec = self._current_call(call_id)
            if rec.status == "scheduled":
                self._book.end(rec, self.now(), SCHEDULED_CALL_DELETED, None)
                self._flush()
                return self.call_json(rec)
            data = self.call_json(rec)
            self._book.remove(rec, self.now())
            if self._store is not None:
                self._store.delete("calls", call_id)
            self._flush()
            return data

    def _check_call(self, body: dict[str, Any], customers: list[dict[str, Any]]) -> dict[str, Any]:
        """The effective assistant of a call body to ``customers``; a 400 as ``POST /call``
        answers when the body names an unknown assistant, phone number or structured output."""
        assistant = self.directory.assistant_for(body)
        self.directory.check_phone_number(body)
        self.outputs.check_calls(assistant, [(customer, None) for customer in customers])
        return assistant

    def create_calls(self, body: Any, base_url: str) -> dict[str, Any]:
        """``POST /call``: one ``Call``, or a ``CallBatchResponse`` when ``customers`` is sent."""
        if not isinstance(body, dict):
            raise bad_request(["body must be an object"])
        errors = create_call_errors(body)
        if errors:
            raise bad_request(errors)
        with self._lock:
            self.advance()
            customers = self.directory.customers_for(body)
            assistant = self._check_call(body, [customer for customer, _ in customers])
            placed = place_calls(
                self._book, body, customers, assistant, self.now(), base_url, self.outputs.plan_for
            )
            self._flush()
            return placed

    # -- Vapi API: campaigns (:mod:`.campaigns`) -------------------------------------------------

    def _place_call(
        self, body: dict[str, Any], assistant: dict[str, Any], at: int, base_url: str
    ) -> CallRecord:
        """A campaign's call, placed at ``at`` as ``POST /call`` places one."""
        customer = body["customer"]
        return place_call(self._book, body, customer, None, assistant, at, base_url, self.outputs.plan_for)[0]

    def _campaign_answer(self, op: Callable[[int], Any]) -> bytes:
        """``op(now)`` under the lock once every event due by ``now`` is applied, saved, as JSON."""
        with self._lock:
            now = self.now()
            self.advance(now)
            answer = json.dumps(op(now), separators=(",", ":")).encode()
            self._flush()
            return answer

    def create_campaign(self, body: dict[str, Any], base_url: str) -> bytes:
        """``POST /v2/campaign``: the ``Campaign``."""
        errors = create_campaign_errors(body)
        if errors:
            raise bad_request(errors)
        return self._campaign_answer(lambda now: self._campaigns.create(body, now, base_url))

    def list_campaigns(self, query: ListQuery) -> bytes:
        """``GET /v2/campaign``: a ``CampaignSummaryPaginatedResponse``."""
        return self._campaign_answer(lambda _: campaigns_page(self._campaigns.campaigns.values(), query))

    def get_campaign(self, campaign_id: str, counters: bool) -> bytes:
        """``GET /v2/campaign/{id}``: the ``CampaignSummary``."""
        return self._campaign_answer(lambda _: self._campaigns.get(campaign_id).summary(counters))

    def update_campaign(self, campaign_id: str, body: dict[str, Any]) -> bytes:
        """``PATCH /v2/campaign/{id}``: the ``Campaign``."""
        errors = update_campaign_errors(body)
        if errors:
            raise bad_request(errors)
        return self._campaign_answer(lambda now: self._campaigns.update(campaign_id, body, now))

    def delete_campaign(self, campaign_id: str) -> bytes:
        """``DELETE /v2/campaign/{id}``: the ``Campaign``, cancelled if it was at work, now gone."""
        return self._campaign_answer(lambda now: self._campaigns.delete(campaign_id, now))

    def campaign_contacts(self, campaign_id: str, query: ContactQuery) -> bytes:
        """``GET /v2/campaign/{id}/contacts``: a ``CampaignContactPaginatedResponse``."""
        return self._campaign_answer(lambda _: contacts_page(self._campaigns.get(campaign_id), query))

    # -- recordings ------------------------------------------------------------------------------

    def recording_location(self, call_id: str, kind: str, base_url: str) -> str:
        """Where ``GET /call/{id}/<kind>-recording`` redirects: a fresh presigned URL; a 404
        ``Artifact not found.`` for an unknown call or one without a recording."""
        with self._lock:
            self.advance()
            rec = self._book.calls.get(call_id)
            if rec is None or not rec.has_recording:
                raise ApiError(404, ARTIFACT_NOT_FOUND)
            return self._book.presigned_url(rec, kind, base_url, self.now())

    def check_presigned(self, call_id: str, kind: str, query: dict[str, str]) -> tuple[str, str] | None:
        """Why a storage request may not read a recording (S3 code, message), or None."""
        return self._book.presigner.check(call_id, kind, query, self.now())

    def has_recording(self, call_id: str) -> bool:
        """Whether the call exists and has a recording (the storage route's object exists)."""
        with self._lock:
            self.advance()
            rec = self._book.calls.get(call_id)
            return rec is not None and rec.has_recording

    # -- calls that skip POST /call (admin) ------------------------------------------------------

    def seed_calls(self, body: Any, base_url: str) -> dict[str, Any]:
        """Create many ended calls at once (:func:`.seeding.seed_calls`): ``{count, firstId,
        lastId}`` and ``ids`` when the body asks for them (``returnIds``)."""
        spec = parse_seed(body, ASSISTANT_ID, PHONE_NUMBER_ID)
        with self._lock:
            self.advance()
            assistant = self._check_call(
                {"assistantId": spec.assistant_id, "phoneNumberId": spec.phone_number_id}, [{}]
            )
            ids = seed_calls(self._book, spec, assistant, self.outputs.plan_for, base_url)
            self._flush()
        answer: dict[str, Any] = {"count": len(ids), "firstId": ids[0] if ids else None}
        answer["lastId"] = ids[-1] if ids else None
        if spec.return_ids:
            answer["ids"] = ids
        return answer

    def inject_inbound(self, body: Any, base_url: str) -> bytes:
        """An inbound call (admin): on its way, or already ended (:func:`.seeding.inject_inbound`)."""
        call, ended = inbound_body(body, ASSISTANT_ID, PHONE_NUMBER_ID)
        with self._lock:
            self.advance()
            assistant = self._check_call(call, [call["customer"]])
            now = self.now()
            rec = inject_inbound(self._book, call, assistant, now, base_url, self.outputs.plan_for, ended)
            self._flush()
            return self.call_json(rec, now)

    # -- Vapi API: assistants and phone numbers -----------------------------------------------

    def create_assistant(self, body: Any) -> dict[str, Any]:
        """``POST /assistant``."""
        assistant = new_assistant(body, iso(self.now()))
        with self._lock:
            self.directory.assistants[assistant["id"]] = assistant
            if self._store is not None:
                self._store.save("assistants", [(assistant["id"], assistant)])
        return assistant

    def get_assistant(self, assistant_id: str) -> dict[str, Any]:
        """``GET /assistant/{id}``."""
        with self._lock:
            return self.directory.get_assistant(assistant_id)

    def list_assistants(self, query: ListQuery) -> list[dict[str, Any]]:
        """``GET /assistant``: newest first, filtered by time, then ``limit``."""
        with self._lock:
            return self.directory.list_assistants(query)

    def list_phone_numbers(self, query: ListQuery) -> list[dict[str, Any]]:
        """``GET /phone-number``: filtered by time, then ``limit``."""
        with self._lock:
            return self.directory.list_phone_numbers(query)

    # -- Vapi API: structured outputs -----------------------------------------------------------

    def _save_output(self, output: dict[str, Any]) -> dict[str, Any]:
        """Persist ``output``; a copy to answer (serialized once the lock is released)."""
        if self._store is not None:
            self._store.save("structured_outputs", [(output["id"], output)])
        return copy.deepcopy(output)

    def create_structured_output(self, body: Any) -> dict[str, Any]:
        """``POST /structured-output``."""
        with self._lock:
            return self._save_output(self.outputs.create(body, self.now()))

    def get_structured_output(self, output_id: str) -> dict[str, Any]:
        """``GET /structured-output/{id}``."""
        with self._lock:
            return copy.deepcopy(self.outputs.get(output_id))

    def list_structured_outputs(self, query: ListQuery) -> dict[str, Any]:
        """``GET /structured-output``: a ``StructuredOutputPaginatedResponse``."""
        with self._lock:
            return copy.deepcopy(self.outputs.page(query))

    def update_structured_output(self, output_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """``PATCH /structured-output/{id}``."""
        with self._lock:
            return self._save_output(self.outputs.update(output_id, body, self.now()))

    def delete_structured_output(self, output_id: str) -> dict[str, Any]:
        """``DELETE /structured-output/{id}`` (calls already placed keep what they resolved)."""
        with self._lock:
            output = self.outputs.delete(output_id)
            if self._store is not None:
                self._store.delete("structured_outputs", output_id)
            return output

    def run_structured_output(self, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /structured-output/run`` (see :func:`.structured_outputs.run_outputs`)."""
        errors = run_structured_output_errors(body)
        if errors:
            raise bad_request(errors)
        with self._lock:
            self.advance()
            answer = run_outputs(self._book, self.outputs, body, self.now())
            self._flush()
            return answer


__all__ = ["ApiError", "CallRecord", "Engine", "EngineConfig", "iso"]
