"""Placing calls: ``POST /call`` for one customer or a batch, building each :class:`CallRecord`
(timeline lengths fixed from its outcome and the speed) and setting it on its way."""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Callable
from typing import Any

from .directory import deep_merge
from .errors import bad_request
from .lifecycle import CallBook
from .outcomes import QUEUE_S, outcome_for
from .records import CallRecord
from .validation import customer_error, parse_iso

#: What a call's effective assistant asks to extract (:meth:`.structured_outputs.OutputLibrary.plan_for`).
PlanOutputs = Callable[[dict[str, Any]], list[dict[str, Any]]]


def place_calls(
    book: CallBook,
    body: dict[str, Any],
    customers: list[tuple[dict[str, Any], str | None]],
    assistant: dict[str, Any],
    now: int,
    base_url: str,
    plan_outputs: PlanOutputs,
) -> dict[str, Any]:
    """One ``Call`` per customer: the ``Call`` itself, or a ``CallBatchResponse`` when the body
    sent ``customers`` (a customer that fails its checks is then reported, not fatal)."""
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
        rec, waits = place_call(book, body, customer, customer_id, assistant, now, base_url, plan_outputs)
        blocked = waits or blocked
        results.append(book.json(rec, now))
    if not batch:
        return json.loads(results[0])  # type: ignore[no-any-return]
    return {
        "results": [json.loads(r) for r in results],
        "errors": failed,
        "subscriptionLimits": {
            "concurrencyBlocked": blocked,
            "concurrencyLimit": book.config.concurrency_limit,
            "remainingConcurrentCalls": book.free_slots(),
        },
    }


def place_call(
    book: CallBook,
    body: dict[str, Any],
    customer: dict[str, Any],
    customer_id: str | None,
    assistant: dict[str, Any],
    now: int,
    base_url: str,
    plan_outputs: PlanOutputs,
) -> tuple[CallRecord, bool]:
    """A new call to ``customer`` (already checked), set on its way (:func:`begin`); and whether
    the concurrency limit blocks it."""
    rec = new_call(book, body, customer, customer_id, assistant, now, base_url)
    rec.output_plan = plan_outputs(rec.assistant)
    return rec, begin(book, rec, body, now)


def new_call(
    book: CallBook,
    body: dict[str, Any],
    customer: dict[str, Any],
    customer_id: str | None,
    assistant: dict[str, Any],
    now: int,
    base_url: str,
) -> CallRecord:
    """A new ``queued`` call to ``customer`` (not yet on its way: see :func:`begin`)."""
    call_id = str(uuid.uuid4())
    per_customer = customer.get("assistantOverrides") or {}
    effective = deep_merge(assistant, per_customer) if per_customer else assistant
    outcome = outcome_for(customer.get("number"))
    max_duration = effective.get("maxDurationSeconds", 600)
    echo = {k: copy.deepcopy(v) for k, v in body.items() if k not in ("customers", "customer")}
    echo["customer"] = copy.deepcopy(customer)
    if customer_id:
        echo["customerId"] = customer_id
    ws_base = "ws" + base_url[4:] if base_url.startswith("http") else base_url
    analysis_delay_s = book.config.analysis_delay_s
    outputs_delay_s = book.config.structured_output_delay_s
    rec = CallRecord(
        id=call_id,
        seq=book.next_seq(),
        created_ms=now,
        updated_ms=now,
        status="queued",
        echo=echo,
        customer=customer,
        seed=customer.get("number") or customer.get("sipUri") or call_id,
        assistant=effective,
        variables=dict(effective.get("variableValues") or {}),
        queue_ms=book.ms(QUEUE_S),
        ring_ms=book.ms(outcome.ring_s),
        talk_ms=book.ms(float(max_duration) if outcome.holds else outcome.talk_s),
        analysis_ms=book.ms(analysis_delay_s) if analysis_delay_s else 0,
        outputs_ms=book.ms(outputs_delay_s) if outputs_delay_s else 0,
        control_url=f"{base_url}/control/{call_id}",
        listen_url=f"{ws_base}/listen/{call_id}",
    )
    book.add(rec)
    return rec


def begin(book: CallBook, rec: CallRecord, body: dict[str, Any], now: int) -> bool:
    """Set a new call on its way: scheduled, ended at once (a start error) or queued; True when
    the concurrency limit blocks it."""
    outcome = outcome_for(rec.customer.get("number"))
    earliest = parse_iso((body.get("schedulePlan") or {}).get("earliestAt"))
    earliest_ms = int(earliest.timestamp() * 1000) if earliest else None
    if earliest_ms is not None and earliest_ms > now:
        rec.status = "scheduled"
        book.schedule(rec, earliest_ms, "start")
        return False
    if not outcome.dials:
        book.end(rec, now, outcome.ended_reason, outcome.ended_message)
        return False
    return book.enter_queue(rec, now)
