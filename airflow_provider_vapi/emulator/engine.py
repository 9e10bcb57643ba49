"""The emulator's state machine: calls, their timelines, concurrency, analysis lag.

Every call has at most one pending event (``start``, ``ring``, ``answer``, ``end``, ``analysis``)
on a heap ordered by time. Before answering any request the engine applies every event that is due
(:meth:`Engine.advance`), in time order and with the event's own timestamp, so:

* status and timestamps are exact whenever they are read (nothing depends on a background tick);
* ``updatedAt`` moves exactly when something changes, and never to a time a reader has already
  been shown, so ``updatedAtGt`` polling cannot miss a change;
* a call ending at ``T`` frees its concurrency slot at ``T`` and the next waiting call is admitted
  at ``T`` (not when someone happens to look).

All durations are fixed when a call is created (``speed`` divides them), so changing the speed at
run time affects new calls only. Times are integer milliseconds since the epoch, as Vapi's wire
format has millisecond precision.
"""

from __future__ import annotations

import copy
import heapq
import json
import threading
import time
import uuid
from collections import deque
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

from . import content
from .constants import (
    CONCURRENCY_MODES,
    DEFAULT_ANALYSIS_DELAY_S,
    DEFAULT_API_KEY,
    DEFAULT_CONCURRENCY_LIMIT,
    DEFAULT_REQUEST_LOG_BYTES,
    DEFAULT_REQUEST_LOG_SIZE,
    ORG_ID,
)
from .errors import ApiError, bad_request, not_found
from .listing import ListQuery
from .outcomes import (
    CONCURRENCY_LIMIT_MESSAGE,
    CONCURRENCY_LIMIT_REACHED,
    MANUALLY_CANCELED,
    QUEUE_S,
    SCHEDULED_CALL_DELETED,
    Outcome,
    outcome_for,
)
from .seeds import seed_assistants, seed_customers, seed_phone_numbers
from .store import SQLiteStore
from .validation import (
    create_assistant_errors,
    create_call_errors,
    customer_error,
    parse_iso,
    update_call_errors,
)

_ASSISTANT_SOURCES = ("assistantId", "assistant", "squadId", "squad", "workflowId", "workflow")
_ATOMIC = frozenset({"schema", "metadata"})


def iso(ms: int) -> str:
    """Vapi's timestamp format: ``2025-01-01T00:00:00.000Z``."""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """``override`` on top of ``base``, recursing into objects (how assistant overrides apply).

    A JSON schema (``structuredDataPlan.schema``) is one value: an override replaces it whole.
    """
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and key not in _ATOMIC:
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


@dataclass
class EngineConfig:
    """Settings that can change at run time through the admin API."""

    api_key: str = DEFAULT_API_KEY
    speed: float = 1.0
    concurrency_limit: int = DEFAULT_CONCURRENCY_LIMIT
    concurrency_mode: str = "queue"
    analysis_delay_s: float = DEFAULT_ANALYSIS_DELAY_S
    request_log_size: int = DEFAULT_REQUEST_LOG_SIZE
    request_log_bytes: int = DEFAULT_REQUEST_LOG_BYTES

    def check(self) -> None:
        """Raise ValueError on a setting the engine cannot run with."""
        if not self.speed > 0:
            raise ValueError("speed must be > 0")
        if self.concurrency_limit < 0:
            raise ValueError("concurrency limit must be >= 0")
        if self.concurrency_mode not in CONCURRENCY_MODES:
            raise ValueError(f"concurrency mode must be one of {CONCURRENCY_MODES}")
        if self.analysis_delay_s < 0:
            raise ValueError("analysis delay must be >= 0")

    def to_wire(self) -> dict[str, Any]:
        """The admin API's view (camelCase, without the key)."""
        return {
            "speed": self.speed,
            "concurrencyLimit": self.concurrency_limit,
            "concurrencyMode": self.concurrency_mode,
            "analysisDelaySeconds": self.analysis_delay_s,
            "requestLogSize": self.request_log_size,
            "requestLogBytes": self.request_log_bytes,
        }


@dataclass
class CallRecord:
    """One call: what was asked, its fixed timeline lengths, and where it is now."""

    id: str
    seq: int
    created_ms: int
    updated_ms: int
    status: str
    echo: dict[str, Any]
    customer: dict[str, Any]
    seed: str
    assistant: dict[str, Any]
    variables: dict[str, Any]
    queue_ms: int
    ring_ms: int
    talk_ms: int
    analysis_ms: int
    control_url: str
    listen_url: str
    waiting_since_ms: int | None = None
    admitted: bool = False
    started_ms: int | None = None
    answered_ms: int | None = None
    ended_ms: int | None = None
    ended_reason: str | None = None
    ended_message: str | None = None
    messages: list[dict[str, Any]] = field(default_factory=list)
    costs: list[dict[str, Any]] = field(default_factory=list)
    cost_breakdown: dict[str, Any] | None = None
    analysis: dict[str, Any] | None = None
    pending_ms: int | None = None
    pending_kind: str | None = None

    def to_wire(self) -> dict[str, Any]:
        """The ``Call`` object as Vapi answers it."""
        call: dict[str, Any] = {
            "id": self.id,
            "orgId": ORG_ID,
            "type": "outboundPhoneCall",
            "createdAt": iso(self.created_ms),
            "updatedAt": iso(self.updated_ms),
            "status": self.status,
            "phoneCallTransport": "pstn",
        }
        call.update(self.echo)
        call["monitor"] = {"listenUrl": self.listen_url, "controlUrl": self.control_url}
        if self.started_ms is not None:
            call["startedAt"] = iso(self.started_ms)
        if self.ended_ms is not None:
            call["endedAt"] = iso(self.ended_ms)
            call["endedReason"] = self.ended_reason
            if self.ended_message:
                call["endedMessage"] = self.ended_message
            call["messages"] = self.messages
            call["artifact"] = {
                "messages": self.messages,
                "transcript": content.transcript(self.messages),
                "variableValues": self.variables,
            }
            call["costs"] = self.costs
            if self.cost_breakdown is not None:
                call["costBreakdown"] = self.cost_breakdown
                call["cost"] = self.cost_breakdown["total"]
            else:
                call["cost"] = 0
        if self.analysis is not None:
            call["analysis"] = self.analysis
        return call

    def to_row(self) -> dict[str, Any]:
        """Everything needed to restore the record (persistence)."""
        return asdict(self)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> CallRecord:
        """The record a :meth:`to_row` dict describes (unknown keys ignored)."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in row.items() if k in known})


class Engine:
    """All state of one emulator; every public method is thread-safe and advances time first."""

    def __init__(self, config: EngineConfig | None = None, state_file: str | None = None) -> None:
        self.config = config or EngineConfig()
        self.config.check()
        self._initial_config = copy.deepcopy(self.config)
        self._lock = threading.RLock()
        self._store = SQLiteStore(state_file) if state_file else None
        self.calls: dict[str, CallRecord] = {}
        self._json: dict[str, bytes] = {}
        self._heap: list[tuple[int, int, str, str]] = []
        self._waiters: deque[str] = deque()
        self._occupied: set[str] = set()
        self._dirty: set[str] = set()
        self._seq = 0
        self.assistants = seed_assistants()
        self.phone_numbers = seed_phone_numbers()
        self.customers = seed_customers()
        if self._store is not None:
            self._load()

    # -- clock and events ---------------------------------------------------------------------

    @staticmethod
    def now() -> int:
        """Wall-clock milliseconds."""
        return time.time_ns() // 1_000_000

    def _ms(self, seconds: float) -> int:
        return max(int(seconds * 1000 / self.config.speed), 1)

    def _schedule(self, rec: CallRecord, at: int, kind: str) -> None:
        rec.pending_ms, rec.pending_kind = at, kind
        heapq.heappush(self._heap, (at, rec.seq, rec.id, kind))

    def _touch(self, rec: CallRecord, at: int) -> None:
        rec.updated_ms = at
        self._json.pop(rec.id, None)
        self._dirty.add(rec.id)

    def advance(self, now: int | None = None) -> None:
        """Apply every event due by ``now`` (default: the clock), in time order."""
        with self._lock:
            now = self.now() if now is None else now
            heap = self._heap
            while heap and heap[0][0] <= now:
                at, _, call_id, kind = heapq.heappop(heap)
                rec = self.calls.get(call_id)
                if rec is None or rec.pending_ms != at or rec.pending_kind != kind:
                    continue
                rec.pending_ms = rec.pending_kind = None
                self._fire(rec, kind, at)
            self._flush()

    def _fire(self, rec: CallRecord, kind: str, at: int) -> None:
        outcome = outcome_for(rec.customer.get("number"))
        if kind == "start":
            rec.status = "queued"
            self._touch(rec, at)
            self._enter_queue(rec, at)
        elif kind == "ring":
            rec.status = "ringing"
            rec.started_ms = at
            self._touch(rec, at)
            self._schedule(rec, at + rec.ring_ms, "answer" if outcome.answers else "end")
        elif kind == "answer":
            rec.status = "in-progress"
            rec.answered_ms = at
            self._touch(rec, at)
            self._schedule(rec, at + rec.talk_ms, "end")
        elif kind == "end":
            self._end(rec, at, outcome.ended_reason, outcome.ended_message)
        elif kind == "analysis":
            self._add_analysis(rec, at)

    def _enter_queue(self, rec: CallRecord, at: int) -> bool:
        """Take a slot or wait for one (``queue``), or end at once (``reject``). True if blocked."""
        full = len(self._occupied) >= self.config.concurrency_limit
        if self.config.concurrency_mode == "reject":
            if full:
                self._end(rec, at, CONCURRENCY_LIMIT_REACHED, CONCURRENCY_LIMIT_MESSAGE)
                return True
            self._admit(rec, at)
            return False
        if full or self._waiters:
            rec.waiting_since_ms = at
            self._waiters.append(rec.id)
            self._admit_waiters(at)
            return rec.id in self._waiters
        self._admit(rec, at)
        return False

    def _admit(self, rec: CallRecord, at: int) -> None:
        rec.admitted = True
        rec.waiting_since_ms = None
        self._occupied.add(rec.id)
        self._dirty.add(rec.id)
        self._schedule(rec, at + rec.queue_ms, "ring")

    def _admit_waiters(self, at: int) -> None:
        while self._waiters and len(self._occupied) < self.config.concurrency_limit:
            rec = self.calls.get(self._waiters.popleft())
            if rec is not None and rec.status == "queued" and not rec.admitted:
                self._admit(rec, at)

    def _release(self, rec: CallRecord, at: int) -> None:
        if rec.id in self._occupied:
            self._occupied.discard(rec.id)
        elif rec.id in self._waiters:
            self._waiters.remove(rec.id)
        self._admit_waiters(at)

    def _end(self, rec: CallRecord, at: int, reason: str, message: str | None) -> None:
        if rec.status == "ended":
            return
        rec.status = "ended"
        rec.ended_ms = at
        rec.ended_reason = reason
        rec.ended_message = message
        rec.pending_ms = rec.pending_kind = None
        if rec.answered_ms is not None:
            outcome = outcome_for(rec.customer.get("number"))
            first = rec.assistant.get("firstMessage")
            rec.messages = content.build_messages(
                outcome.messages,
                outcome.ended_reason == "voicemail",
                content.render(first, rec.variables) if isinstance(first, str) else None,
                rec.answered_ms,
                at,
            )
        if rec.started_ms is not None:
            rec.costs, rec.cost_breakdown = content.costs(rec.started_ms, at, rec.messages, rec.assistant)
        self._touch(rec, at)
        self._release(rec, at)
        plan = rec.assistant.get("analysisPlan") or {}
        threshold = plan.get("minMessagesThreshold", 2)
        if rec.messages and len(rec.messages) >= threshold:
            self._schedule(rec, at + rec.analysis_ms, "analysis")

    def _add_analysis(self, rec: CallRecord, at: int) -> None:
        plan = rec.assistant.get("analysisPlan") or {}
        assert rec.ended_reason is not None
        rec.analysis = content.analysis(plan, rec.seed, rec.customer, rec.variables, rec.ended_reason)
        items, breakdown, total = content.analysis_costs(rec.analysis)
        rec.costs = [*rec.costs, *items]
        if rec.cost_breakdown is not None:
            rec.cost_breakdown = {
                **rec.cost_breakdown,
                "analysisCostBreakdown": breakdown,
                "total": round(rec.cost_breakdown["total"] + total, 4),
            }
        self._touch(rec, at)

    # -- persistence --------------------------------------------------------------------------

    def _flush(self) -> None:
        if self._store is None or not self._dirty:
            self._dirty.clear()
            return
        rows = [(cid, self.calls[cid].to_row()) for cid in self._dirty if cid in self.calls]
        self._dirty.clear()
        self._store.save("calls", rows)

    def _load(self) -> None:
        assert self._store is not None
        for row in self._store.load("assistants"):
            self.assistants[row["id"]] = row
        records = sorted((CallRecord.from_row(r) for r in self._store.load("calls")), key=lambda r: r.seq)
        for rec in records:
            self.calls[rec.id] = rec
            self._seq = max(self._seq, rec.seq)
            if rec.status == "ended":
                pass
            elif rec.admitted:
                self._occupied.add(rec.id)
            elif rec.status == "queued":
                self._waiters.append(rec.id)
            if rec.pending_ms is not None and rec.pending_kind is not None:
                heapq.heappush(self._heap, (rec.pending_ms, rec.seq, rec.id, rec.pending_kind))
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
            self.calls.clear()
            self._json.clear()
            self._heap.clear()
            self._waiters.clear()
            self._occupied.clear()
            self._dirty.clear()
            self.assistants = seed_assistants()
            self.phone_numbers = seed_phone_numbers()
            self.customers = seed_customers()
            self.config = copy.deepcopy(self._initial_config)
            if self._store is not None:
                self._store.clear()

    def _current_call(self, call_id: str) -> CallRecord:
        """The call ``call_id`` once time has advanced (hold the lock); a 404 when there is none."""
        self.advance()
        rec = self.calls.get(call_id)
        if rec is None:
            raise not_found("Call")
        return rec

    def configure(self, changes: dict[str, Any]) -> None:
        """Change run-time settings (camelCase keys of :meth:`EngineConfig.to_wire`)."""
        mapping = {
            "speed": ("speed", float),
            "concurrencyLimit": ("concurrency_limit", int),
            "concurrencyMode": ("concurrency_mode", str),
            "analysisDelaySeconds": ("analysis_delay_s", float),
        }
        with self._lock:
            self.advance()
            new = copy.deepcopy(self.config)
            for key, value in changes.items():
                if key not in mapping:
                    raise ValueError(f"unknown setting {key!r} (known: {sorted(mapping)})")
                attr, kind = mapping[key]
                setattr(new, attr, kind(value))
            new.check()
            self.config = new
            self._admit_waiters(self.now())
            self._flush()

    def end_call(self, call_id: str) -> CallRecord:
        """What ``POST {controlUrl} {"type": "end-call"}`` does: end a live call now."""
        with self._lock:
            rec = self._current_call(call_id)
            if rec.status != "ended":
                self._end(rec, self.now(), MANUALLY_CANCELED, None)
            self._flush()
            return rec

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
            self._json.pop(rec.id, None)
            self._flush()
            return rec

    # -- Vapi API -----------------------------------------------------------------------------

    def call_json(self, rec: CallRecord) -> bytes:
        """The serialized ``Call``, cached until the call changes (the hot path of polling)."""
        data = self._json.get(rec.id)
        if data is None:
            data = json.dumps(rec.to_wire(), separators=(",", ":")).encode()
            self._json[rec.id] = data
        return data

    def get_call(self, call_id: str) -> bytes:
        """``GET /call/{id}``."""
        with self._lock:
            return self.call_json(self._current_call(call_id))

    def list_calls(self, query: ListQuery) -> bytes:
        """``GET /call``: newest first by ``createdAt`` (ties: creation order), then ``limit``."""
        with self._lock:
            self.advance()
            picked: list[CallRecord] = []
            for rec in self.calls.values():
                ids = {"id": rec.id, **{k: rec.echo.get(k) for k in ("assistantId", "phoneNumberId")}}
                if all(ids[k] == v for k, v in query.equal.items()) and query.within(
                    rec.created_ms, rec.updated_ms
                ):
                    picked.append(rec)
            picked.sort(key=lambda r: (r.created_ms, r.seq), reverse=True)
            return b"[" + b",".join(self.call_json(r) for r in picked[: query.limit]) + b"]"

    def update_call(self, call_id: str, body: dict[str, Any]) -> bytes:
        """``PATCH /call/{id}``: only ``name`` can change."""
        errors = update_call_errors(body)
        if errors:
            raise bad_request(errors)
        with self._lock:
            rec = self._current_call(call_id)
            if "name" in body and body["name"] != rec.echo.get("name"):
                rec.echo["name"] = body["name"]
                self._touch(rec, self.now())
            self._flush()
            return self.call_json(rec)

    def delete_call(self, call_id: str) -> bytes:
        """``DELETE /call/{id}``: a scheduled call ends ``scheduled-call-deleted``; others go."""
        with self._lock:
            rec = self._current_call(call_id)
            if rec.status == "scheduled":
                self._end(rec, self.now(), SCHEDULED_CALL_DELETED, None)
                self._flush()
                return self.call_json(rec)
            data = self.call_json(rec)
            del self.calls[call_id]
            self._json.pop(call_id, None)
            self._release(rec, self.now())
            if self._store is not None:
                self._store.delete("calls", call_id)
            self._flush()
            return data

    def create_calls(self, body: Any, base_url: str) -> dict[str, Any]:
        """``POST /call``: one ``Call``, or a ``CallBatchResponse`` when ``customers`` is sent."""
        if not isinstance(body, dict):
            raise bad_request(["body must be an object"])
        errors = create_call_errors(body)
        if errors:
            raise bad_request(errors)
        with self._lock:
            self.advance()
            customers = self._customers(body)
            assistant = self._assistant(body)
            self._phone_number(body)
            now = self.now()
            batch = "customers" in body
            results: list[bytes] = []
            failed: list[dict[str, Any]] = []
            blocked = False
            for customer, customer_id in customers:
                problem = customer_error(customer)
                if problem is not None:
                    if not batch:
                        raise bad_request(problem)
                    failed.append({"customer": customer, "error": problem})
                    continue
                rec, was_blocked = self._new_call(body, customer, customer_id, assistant, now, base_url)
                blocked = blocked or was_blocked
                results.append(self.call_json(rec))
            self._flush()
            if not batch:
                return json.loads(results[0])  # type: ignore[no-any-return]
            limit = self.config.concurrency_limit
            return {
                "results": [json.loads(r) for r in results],
                "errors": failed,
                "subscriptionLimits": {
                    "concurrencyBlocked": blocked,
                    "concurrencyLimit": limit,
                    "remainingConcurrentCalls": max(limit - len(self._occupied), 0),
                },
            }

    def _customers(self, body: dict[str, Any]) -> list[tuple[dict[str, Any], str | None]]:
        if "customers" in body and ("customer" in body or "customerId" in body):
            raise bad_request("Couldn't Get Customer. Need Either `customers` Or `customer`, Not Both.")
        if body.get("customers"):
            return [(dict(c), None) for c in body["customers"]]
        if body.get("customer") is not None:
            return [(dict(body["customer"]), None)]
        customer_id = body.get("customerId")
        if customer_id:
            stored = self.customers.get(customer_id)
            if stored is None:
                raise bad_request(f"Couldn't Get Customer. `customerId` {customer_id} Does Not Exist.")
            return [(copy.deepcopy(stored), customer_id)]
        raise bad_request("Couldn't Get Customer. Need Either `customerId` Or `customer`.")

    def _assistant(self, body: dict[str, Any]) -> dict[str, Any]:
        given = [key for key in _ASSISTANT_SOURCES if body.get(key) is not None]
        if len(given) > 1:
            raise bad_request(
                "Only One Of `assistantId`, `assistant`, `squadId`, `squad`, `workflowId`, `workflow` "
                f"Can Be Provided, Got {', '.join(f'`{g}`' for g in given)}."
            )
        if not given:
            raise bad_request(
                "Couldn't Get Assistant. Need Either `assistantId`, `assistant`, `squadId`, `squad`, "
                "`workflowId` Or `workflow`."
            )
        if body.get("assistantVersion") is not None and "assistantId" not in given:
            raise bad_request("`assistantVersion` Can Only Be Used With `assistantId`.")
        base: dict[str, Any] = {}
        if given[0] == "assistantId":
            stored = self.assistants.get(body["assistantId"])
            if stored is None:
                raise bad_request(
                    f"Couldn't Get Assistant. `assistantId` {body['assistantId']} Does Not Exist."
                )
            base = {k: v for k, v in stored.items() if k not in ("id", "orgId", "createdAt", "updatedAt")}
        elif given[0] == "assistant":
            base = body["assistant"]
        overrides = body.get("assistantOverrides") or body.get("squadOverrides") or {}
        return deep_merge(copy.deepcopy(base), overrides)

    def _phone_number(self, body: dict[str, Any]) -> None:
        if body.get("phoneNumberId"):
            if body["phoneNumberId"] not in self.phone_numbers:
                raise bad_request(
                    f"Couldn't Get Phone Number. `phoneNumberId` {body['phoneNumberId']} Does Not Exist."
                )
        elif body.get("phoneNumber") is None:
            raise bad_request("Couldn't Get Phone Number. Need Either `phoneNumberId` Or `phoneNumber`.")

    def _new_call(
        self,
        body: dict[str, Any],
        customer: dict[str, Any],
        customer_id: str | None,
        assistant: dict[str, Any],
        now: int,
        base_url: str,
    ) -> tuple[CallRecord, bool]:
        call_id = str(uuid.uuid4())
        per_customer = customer.get("assistantOverrides") or {}
        effective = deep_merge(assistant, per_customer) if per_customer else assistant
        variables = dict(effective.get("variableValues") or {})
        outcome = outcome_for(customer.get("number"))
        max_duration = effective.get("maxDurationSeconds", 600)
        echo = {k: copy.deepcopy(v) for k, v in body.items() if k not in ("customers", "customer")}
        echo["customer"] = copy.deepcopy(customer)
        if customer_id:
            echo["customerId"] = customer_id
        ws_base = "ws" + base_url[4:] if base_url.startswith("http") else base_url
        self._seq += 1
        rec = CallRecord(
            id=call_id,
            seq=self._seq,
            created_ms=now,
            updated_ms=now,
            status="queued",
            echo=echo,
            customer=customer,
            seed=customer.get("number") or customer.get("sipUri") or call_id,
            assistant=effective,
            variables=variables,
            queue_ms=self._ms(QUEUE_S),
            ring_ms=self._ms(outcome.ring_s),
            talk_ms=self._ms(float(max_duration) if outcome.holds else outcome.talk_s),
            analysis_ms=self._ms(self.config.analysis_delay_s) if self.config.analysis_delay_s else 0,
            control_url=f"{base_url}/control/{call_id}",
            listen_url=f"{ws_base}/listen/{call_id}",
        )
        self.calls[call_id] = rec
        self._dirty.add(call_id)
        return rec, self._begin(rec, body, outcome, now)

    def _begin(self, rec: CallRecord, body: dict[str, Any], outcome: Outcome, now: int) -> bool:
        """Set a new call on its way: scheduled, ended at once (a start error) or queued; True when
        the concurrency limit blocks it."""
        earliest = parse_iso((body.get("schedulePlan") or {}).get("earliestAt"))
        earliest_ms = int(earliest.timestamp() * 1000) if earliest else None
        if earliest_ms is not None and earliest_ms > now:
            rec.status = "scheduled"
            self._schedule(rec, earliest_ms, "start")
            return False
        if not outcome.dials:
            self._end(rec, now, outcome.ended_reason, outcome.ended_message)
            return False
        return self._enter_queue(rec, now)

    def create_assistant(self, body: Any) -> dict[str, Any]:
        """``POST /assistant``."""
        if not isinstance(body, dict):
            raise bad_request(["body must be an object"])
        errors = create_assistant_errors(body)
        if errors:
            raise bad_request(errors)
        stamp = iso(self.now())
        assistant = {**copy.deepcopy(body), "id": str(uuid.uuid4()), "orgId": ORG_ID}
        assistant.update(createdAt=stamp, updatedAt=stamp)
        with self._lock:
            self.assistants[assistant["id"]] = assistant
            if self._store is not None:
                self._store.save("assistants", [(assistant["id"], assistant)])
        return assistant

    def get_assistant(self, assistant_id: str) -> dict[str, Any]:
        """``GET /assistant/{id}``."""
        with self._lock:
            found = self.assistants.get(assistant_id)
            if found is None:
                raise not_found("Assistant")
            return found

    def list_assistants(self, query: ListQuery) -> list[dict[str, Any]]:
        """``GET /assistant``: newest first, filtered by time, then ``limit``."""
        with self._lock:
            found = [a for a in self.assistants.values() if query.within_iso(a)]
        return sorted(found, key=lambda a: a["createdAt"], reverse=True)[: query.limit]

    def list_phone_numbers(self, query: ListQuery) -> list[dict[str, Any]]:
        """``GET /phone-number``: filtered by time, then ``limit``."""
        with self._lock:
            return [p for p in self.phone_numbers.values() if query.within_iso(p)][: query.limit]

    def call_records(self) -> list[CallRecord]:
        """Every call (admin view), oldest first."""
        with self._lock:
            self.advance()
            return sorted(self.calls.values(), key=lambda r: r.seq)


__all__ = ["ApiError", "CallRecord", "Engine", "EngineConfig", "iso"]
