"""Calls that did not go through ``POST /call``: bulk-seeded ended calls (tests, benchmarks of
exports) and injected inbound calls (admin API).

A seeded call is built already ended, with everything a call that ran would carry by then:
messages, transcript, costs, ``endedReason``, analysis and structured outputs (when it had a
conversation), a recording (unless asked not to). Its outcome is picked from a fixed mix
(:data:`OUTCOME_MIX`), its caller/callee number chosen so that :func:`.outcomes.outcome_for`
agrees with it, every choice made by a random generator seeded from the request, so the same
request seeds the same calls (but for their ids). The ``i``-th of ``count`` calls (0-based) has
``updatedAt = start + floor(i * (end - start) / count)`` (milliseconds); ``endedAt`` is the
analysis delay before it when something was written after the end, else equal to it; ``createdAt``
precedes them by the call's queue, ring and talk times.
"""

from __future__ import annotations

import copy
import gc
import os
import random
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from . import content, output_results
from .creation import begin, new_call
from .directory import deep_merge
from .errors import bad_request
from .lifecycle import CallBook
from .outcomes import VOICEMAIL, Outcome, outcome_for
from .records import CallRecord
from .validation import customer_error, parse_iso

#: The largest ``count`` one seeding request takes.
MAX_SEED = 1_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: From how many seeded calls on the garbage collector runs once at the end of the seeding.
_COLLECT_AFTER = 20_000
CALL_TYPES = ("outboundPhoneCall", "inboundPhoneCall")
MIXED = "mixed"
#: Which outcomes seeded calls have, by weight: ``None`` is a completed conversation, otherwise
#: the number suffix of :data:`.outcomes.OUTCOMES` (no answer, busy, voicemail, platform fault,
#: start error, customer hangs up at once).
OUTCOME_MIX: tuple[tuple[str | None, int], ...] = (
    (None, 75),
    ("0002", 8),
    ("0001", 5),
    ("0003", 6),
    ("0004", 2),
    ("0005", 2),
    ("0007", 2),
)
_SEED_KEYS = {
    "count",
    "start",
    "end",
    "assistantId",
    "phoneNumberId",
    "campaignId",
    "type",
    "recording",
    "returnIds",
}

#: What a call running the effective assistant extracts (:meth:`.structured_outputs.OutputLibrary.plan_for`).
PlanOutputs = Callable[[dict[str, Any]], list[dict[str, Any]]]


@dataclass
class SeedSpec:
    """A validated seeding request."""

    count: int
    start_ms: int
    end_ms: int
    assistant_id: str
    phone_number_id: str
    campaign_id: str | None = None
    call_type: str = "outboundPhoneCall"
    recording: bool = True
    return_ids: bool = False

    def updated_ms(self, index: int) -> int:
        """``updatedAt`` of the ``index``-th call: spread evenly over ``[start, end)``."""
        return self.start_ms + (self.end_ms - self.start_ms) * index // self.count


def _ms(value: Any, name: str, errors: list[str]) -> int:
    """``value`` (ISO 8601) in milliseconds since the epoch, exactly; 0 and an error if it is not one."""
    parsed = parse_iso(value)
    if parsed is None:
        errors.append(f"{name} must be a valid ISO 8601 date string")
        return 0
    return (parsed - _EPOCH) // timedelta(milliseconds=1)


def parse_seed(body: Any, assistant_id: str, phone_number_id: str) -> SeedSpec:
    """The seeding request ``body`` describes; a 400 listing what is wrong."""
    if not isinstance(body, dict):
        raise bad_request(["body must be an object"])
    errors = [f"property {key} should not exist" for key in body if key not in _SEED_KEYS]
    count = body.get("count")
    if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= MAX_SEED:
        errors.append(f"count must be an integer from 0 to {MAX_SEED}")
        count = 0
    start, end = _ms(body.get("start"), "start", errors), _ms(body.get("end"), "end", errors)
    if not errors and end <= start:
        errors.append("end must be after start")
    kind = body.get("type", CALL_TYPES[0])
    if kind not in (*CALL_TYPES, MIXED):
        errors.append(f"type must be one of the following values: {', '.join((*CALL_TYPES, MIXED))}")
    for key in ("recording", "returnIds"):
        if not isinstance(body.get(key, True), bool):
            errors.append(f"{key} must be a boolean value")
    for key in ("assistantId", "phoneNumberId", "campaignId"):
        if body.get(key) is not None and not isinstance(body[key], str):
            errors.append(f"{key} must be a string")
    if errors:
        raise bad_request(errors)
    return SeedSpec(
        count=count,
        start_ms=start,
        end_ms=end,
        assistant_id=body.get("assistantId") or assistant_id,
        phone_number_id=body.get("phoneNumberId") or phone_number_id,
        campaign_id=body.get("campaignId"),
        call_type=kind,
        recording=body.get("recording", True),
        return_ids=body.get("returnIds", False),
    )


def _below(rng: random.Random, n: int) -> int:
    """A number from 0 to ``n - 1`` (``randrange`` costs ten times more: it adds up over 100,000)."""
    return int(rng.random() * n)


def _pick_outcome(rng: random.Random) -> str | None:
    roll = _below(rng, 100)
    for suffix, weight in OUTCOME_MIX:
        if roll < weight:
            return suffix
        roll -= weight
    return None


def seeded_number(rng: random.Random, suffix: str | None) -> str:
    """An E.164 number whose last four digits script the outcome ``suffix`` (None: a conversation),
    from a pool of a few thousand customers (called again and again, as a campaign's are)."""
    tail = suffix if suffix is not None else f"{1000 + _below(rng, 40)}"
    return f"+1555{_below(rng, 100):03d}{tail}"


def call_ids(count: int) -> Iterator[str]:
    """``count`` random version-4 uuids (one read of the system's random source for them all)."""
    raw = os.urandom(16 * count).hex()
    for i in range(0, 32 * count, 32):
        h = raw[i : i + 32]
        yield f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"


def without_recording(assistant: dict[str, Any]) -> dict[str, Any]:
    """``assistant`` with ``artifactPlan.recordingEnabled: false``."""
    return deep_merge(assistant, {"artifactPlan": {"recordingEnabled": False}})


@cache
def _message_count(outcome: Outcome) -> int:
    """How many messages a call with ``outcome`` has once answered."""
    voicemail = outcome.ended_reason == VOICEMAIL
    return len(content.build_messages(outcome.messages, voicemail, None, 0, 60_000))


def _lengths(rng: random.Random, outcome: Outcome, assistant: dict[str, Any]) -> tuple[int, int, int]:
    """Realistic queue, ring and talk lengths (ms) of ``outcome``: several times the emulator's
    live defaults, in whole seconds (a call that holds lasts ``maxDurationSeconds``)."""
    queue = 300 + _below(rng, 1200)
    ring = 1000 * int(outcome.ring_s * (1.0 + 2.0 * rng.random()))
    if not outcome.answers:
        return queue, ring, 0
    if outcome.holds:
        return queue, ring, int(float(assistant.get("maxDurationSeconds", 600)) * 1000)
    return queue, ring, 1000 * int(outcome.talk_s * (3.0 + 27.0 * rng.random()))


class Seeder:
    """Builds calls that have already ended, all running one assistant from one base URL.

    What many calls share is computed once and shared (never mutated: every change to a call
    replaces these objects): the customer of a number, the analysis of a number, the costs of a
    call length. Messages (with their times) are each call's own."""

    def __init__(
        self, book: CallBook, assistant: dict[str, Any], plan_outputs: PlanOutputs, base_url: str
    ) -> None:
        self.book = book
        self.assistant = assistant
        self.plan_outputs = plan_outputs
        self.has_outputs = bool(plan_outputs(assistant))
        self.base_url = base_url
        self.ws_base = "ws" + base_url[4:] if base_url.startswith("http") else base_url
        self.lag_ms = max(int(book.config.analysis_delay_s * 1000), 0)
        self.variables = dict(assistant.get("variableValues") or {})
        plan = assistant.get("analysisPlan") or {}
        self.analysis_plan: dict[str, Any] = plan if isinstance(plan, dict) else {}
        self.threshold = self.analysis_plan.get("minMessagesThreshold", 2)
        first = assistant.get("firstMessage")
        self.opening = content.render(first, self.variables) if isinstance(first, str) else None
        self._customers: dict[str, dict[str, Any]] = {}
        self._outcomes: dict[str | None, Outcome] = {}
        self._analyses: dict[str, tuple[dict[str, Any], tuple[Any, ...]]] = {}
        self._costs: dict[tuple[int, str, bool], tuple[list[dict[str, Any]], dict[str, Any]]] = {}

    def outcome(self, number: str | None) -> Outcome:
        """:func:`.outcomes.outcome_for` ``number`` (remembered: a few thousand numbers recur)."""
        found = self._outcomes.get(number)
        if found is None:
            found = self._outcomes[number] = outcome_for(number)
        return found

    def customer(self, number: str) -> dict[str, Any]:
        """The (shared) customer object of ``number``."""
        found = self._customers.get(number)
        if found is None:
            found = self._customers[number] = {"number": number}
        return found

    def call(
        self, call_id: str, rng: random.Random, echo: dict[str, Any], call_type: str, updated_ms: int
    ) -> CallRecord:
        """A call to (or from) ``echo["customer"]`` that has ended, last updated at ``updated_ms``
        (its analysis and structured outputs written the analysis delay after its end)."""
        customer = echo["customer"]
        outcome = self.outcome(customer.get("number"))
        queue, ring, talk = _lengths(rng, outcome, self.assistant)
        count = _message_count(outcome) if outcome.dials and outcome.answers else 0
        analysed = count > 0 and count >= self.threshold
        late = analysed or (self.has_outputs and count >= 2)
        ended = updated_ms - (self.lag_ms if late else 0)
        answered = ended - talk if outcome.dials and outcome.answers else None
        started = (answered if answered is not None else ended) - ring if outcome.dials else None
        rec = CallRecord(
            id=call_id,
            seq=self.book.next_seq(),
            created_ms=(started if started is not None else ended) - (queue if outcome.dials else 0),
            updated_ms=updated_ms,
            status="ended",
            echo=echo,
            customer=customer,
            seed=customer.get("number") or call_id,
            assistant=self.assistant,
            variables=self.variables,
            queue_ms=queue,
            ring_ms=ring,
            talk_ms=talk,
            analysis_ms=self.lag_ms,
            outputs_ms=self.lag_ms,
            control_url=f"{self.base_url}/control/{call_id}",
            listen_url=f"{self.ws_base}/listen/{call_id}",
            started_ms=started,
            answered_ms=answered,
            ended_ms=ended,
            ended_reason=outcome.ended_reason,
            ended_message=outcome.ended_message,
            call_type=call_type,
        )
        self._fill(rec, outcome, analysed)
        self.book.add(rec)
        return rec

    def _fill(self, rec: CallRecord, outcome: Outcome, analysed: bool) -> None:
        """Messages, costs, analysis and structured outputs of the ended ``rec``."""
        ended = rec.ended_ms
        assert ended is not None
        voicemail = outcome.ended_reason == VOICEMAIL
        if rec.answered_ms is not None:
            rec.messages = content.build_messages(
                outcome.messages, voicemail, self.opening, rec.answered_ms, ended
            )
        if rec.started_ms is not None:
            rec.costs, rec.cost_breakdown = self._priced(rec, outcome, analysed)
        if analysed:
            rec.analysis = self._analysis(rec)
        if self.has_outputs:
            rec.output_plan = self.plan_outputs(self.assistant)
            results, skipped = output_results.evaluate(rec, rec.output_plan)
            output_results.write(rec, results, skipped, rec.updated_ms if results else ended)
            if results:
                self.book.charge(rec, *output_results.output_costs(results))

    def _analysis(self, rec: CallRecord) -> dict[str, Any]:
        """The analysis of ``rec`` (the same for every call to its number: it ends the same way)."""
        key = rec.seed
        found = self._analyses.get(key)
        if found is None:
            assert rec.ended_reason is not None
            analysis = content.analysis(
                self.analysis_plan, rec.seed, rec.customer, self.variables, rec.ended_reason
            )
            found = self._analyses[key] = (analysis, content.analysis_costs(analysis))
        return found[0]

    def _priced(
        self, rec: CallRecord, outcome: Outcome, analysed: bool
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """``costs`` and ``costBreakdown`` of ``rec`` (analysis charged when ``analysed``), the same
        for every call of its length and outcome."""
        assert rec.started_ms is not None and rec.ended_ms is not None
        key = (rec.ended_ms - rec.started_ms, outcome.label, analysed)
        found = self._costs.get(key)
        if found is None:
            probe = copy.copy(rec)
            probe.costs, probe.cost_breakdown = content.costs(
                rec.started_ms, rec.ended_ms, rec.messages, self.assistant
            )
            if analysed:
                self.book.charge(probe, *content.analysis_costs(self._analysis(rec)))
            assert probe.cost_breakdown is not None
            found = self._costs[key] = (probe.costs, probe.cost_breakdown)
        return found


def seed_calls(
    book: CallBook, spec: SeedSpec, assistant: dict[str, Any], plan_outputs: PlanOutputs, base_url: str
) -> list[str]:
    """Create the ``spec.count`` ended calls of ``spec`` (see the module docstring); their ids in
    ``updatedAt`` order."""
    rng = random.Random(f"{spec.count}:{spec.start_ms}:{spec.end_ms}:{spec.call_type}")
    seeder = Seeder(
        book, assistant if spec.recording else without_recording(assistant), plan_outputs, base_url
    )
    base_echo: dict[str, Any] = {"assistantId": spec.assistant_id, "phoneNumberId": spec.phone_number_id}
    if spec.campaign_id is not None:
        base_echo["campaignId"] = spec.campaign_id
    ids: list[str] = []
    collecting = gc.isenabled()
    gc.disable()  # only new objects that live on: collecting them as they pile up is wasted time
    try:
        for index, call_id in enumerate(call_ids(spec.count)):
            customer = seeder.customer(seeded_number(rng, _pick_outcome(rng)))
            call_type = spec.call_type
            if call_type == MIXED:
                call_type = CALL_TYPES[1] if _below(rng, 4) == 0 else CALL_TYPES[0]
            echo = {**base_echo, "customer": customer}
            seeder.call(call_id, rng, echo, call_type, spec.updated_ms(index))
            ids.append(call_id)
    finally:
        if collecting:
            gc.enable()
    if spec.count >= _COLLECT_AFTER:
        # Once now, rather than in the middle of the next requests: the new objects would otherwise
        # be scanned as young ones, then again by the full collection their number sets off.
        gc.collect()
    return ids


_INBOUND_KEYS = ("number", "phoneNumberId", "assistantId", "assistantOverrides", "customer", "name", "ended")


def inbound_body(body: Any, assistant_id: str, phone_number_id: str) -> tuple[dict[str, Any], bool]:
    """The ``POST /call``-like body of an injected inbound call (the caller is the customer), and
    whether it lands already ended; a 400 listing what is wrong with ``body``."""
    if not isinstance(body, dict):
        raise bad_request(["body must be an object"])
    errors = [f"property {key} should not exist" for key in body if key not in _INBOUND_KEYS]
    if not isinstance(body.get("number"), str):
        errors.append("number must be a string")
    for key in ("customer", "assistantOverrides"):
        if body.get(key) is not None and not isinstance(body[key], dict):
            errors.append(f"{key} must be an object")
    for key in ("phoneNumberId", "assistantId", "name"):
        if body.get(key) is not None and not isinstance(body[key], str):
            errors.append(f"{key} must be a string")
    if not isinstance(body.get("ended", False), bool):
        errors.append("ended must be a boolean value")
    if errors:
        raise bad_request(errors)
    call: dict[str, Any] = {
        "assistantId": body.get("assistantId") or assistant_id,
        "phoneNumberId": body.get("phoneNumberId") or phone_number_id,
        "customer": {**(body.get("customer") or {}), "number": body["number"]},
    }
    for key in ("name", "assistantOverrides"):
        if body.get(key) is not None:
            call[key] = body[key]
    return call, bool(body.get("ended", False))


def inject_inbound(
    book: CallBook,
    body: dict[str, Any],
    assistant: dict[str, Any],
    now: int,
    base_url: str,
    plan_outputs: PlanOutputs,
    ended: bool,
) -> CallRecord:
    """An inbound call from ``body["customer"]`` (see :func:`inbound_body`): on its way through the
    normal lifecycle from ``now`` (its number's outcome, the shared concurrency limit), or, with
    ``ended``, one that ended just now."""
    customer = body["customer"]
    problem = customer_error(customer)
    if problem is not None:
        raise bad_request(problem)
    if ended:
        echo = {k: v for k, v in body.items() if k != "customer"}
        seeder = Seeder(book, assistant, plan_outputs, base_url)
        rng = random.Random(f"{customer['number']}:{now}")
        return seeder.call(str(uuid.uuid4()), rng, {**echo, "customer": customer}, CALL_TYPES[1], now)
    rec = new_call(book, body, customer, None, assistant, now, base_url)
    rec.call_type = CALL_TYPES[1]
    rec.output_plan = plan_outputs(rec.assistant)
    begin(book, rec, body, now)
    return rec
