"""Re-extraction: running a structured output over past calls, never asking twice.

``POST /structured-output/run`` takes up to 100 ended calls and answers at once; Vapi then extracts
in the background and writes each result on its call (``artifact.structuredOutputs``,
``structuredOutputsLastUpdatedAt``). ``RunStructuredOutputOperator`` is built on this module, which
owns every decision about a run:

* **which output** (:class:`OutputRef`): a saved one by id (its name and ``updatedAt`` read once), or
  an inline definition (Vapi keys its result by an id made at run time, so it is found by name);
* **which calls still need it** (:func:`is_fresh`): a call whose result for the output was written
  since the dag run began (less :data:`~airflow_provider_vapi.wire.skew.CLOCK_SKEW`: Vapi's clock stamps
  it) and since the output's definition last changed is done; a call nobody spoke in is done too
  (Vapi extracts nothing from it). So a retry, or a clear, re-runs nothing that is already there,
  and a new dag run extracts again;
* **the submission** (:func:`submit_op`): one request per chunk of at most :data:`CHUNK_MAX`,
  each answer judged as a call create's is (:func:`~.idempotency.create.judge_send`): a 429 or a
  connection that never opened is sent again (nothing ran); Vapi's own error (500, 503: it processed
  nothing) is sent again once its processing has settled (:data:`~.idempotency.create.ANSWERED_SETTLE`);
  an answer lost in flight (timeout, dropped, a gateway's 502, 504) is *not*: the run may be under
  way, and the results will tell;
* **the memory across tries** (:func:`in_flight`, :func:`note_submitted`, :func:`forget_submitted`):
  on Airflow 3.3+ the task state store keeps when each call was submitted (and forgets it when Vapi
  certainly ran nothing), and a retry waits for those results instead of submitting again. Without a store (Airflow 2.11) a retry first waits up to the connection's
  ``create_settle_seconds`` for results an earlier try's run may still be writing
  (:func:`settle_earlier_runs`), then submits what is still missing.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

import httpx

from airflow_provider_vapi.exceptions import VapiRunUnresolvedError
from airflow_provider_vapi.idempotency.create import ANSWERED_SETTLE, SendOutcome, judge_send
from airflow_provider_vapi.models import Call
from airflow_provider_vapi.results import AwaitedResults
from airflow_provider_vapi.wire.paging import parse_ts_or_none
from airflow_provider_vapi.wire.retries import is_retryable_status
from airflow_provider_vapi.wire.skew import looking_back
from airflow_provider_vapi.wire.transport import Attempts, Op, Send, Sleep, describe, raise_for

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

    from airflow_provider_vapi.hook.core import VapiHook

#: Vapi's limit of call ids per run request.
CHUNK_MAX: Final = 100
#: Task state store key (Airflow 3.3+): call id -> when a try submitted it (``time.time()``).
STATE_KEY: Final = "vapi_structured_output_runs"
RUN_PATH: Final = "/structured-output/run"


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


@dataclass(frozen=True)
class OutputRef:
    """The structured output a run extracts: saved (``id``) or inline (``definition``)."""

    name: str
    id: str | None = None
    definition: Mapping[str, Any] | None = None
    updated_at: datetime | None = None

    @classmethod
    def saved(cls, output: Mapping[str, Any]) -> OutputRef:
        """From ``GET /structured-output/{id}``."""
        return cls(name=str(output.get("name") or output["id"]), id=str(output["id"]),
                   updated_at=parse_ts_or_none(output.get("updatedAt")))  # fmt: skip

    def body(self, call_ids: Sequence[str]) -> dict[str, Any]:
        """The ``POST /structured-output/run`` body for ``call_ids``."""
        which = (
            {"structuredOutputId": self.id} if self.id else {"structuredOutput": dict(self.definition or {})}
        )
        return {**which, "callIds": list(call_ids)}

    def entry(self, call: Call) -> tuple[str, Any] | None:
        """``("result", value)`` or ``("skipped", unmet condition)`` for this output on ``call``."""
        artifact = _dict(call.artifact)
        for kind, key in (("result", "structuredOutputs"), ("skipped", "skippedStructuredOutputs")):
            entries = _dict(artifact.get(key))
            if self.id is not None and self.id in entries:
                found = _dict(entries[self.id])
                return kind, found.get("result" if kind == "result" else "unmetCondition")
            named = [_dict(e) for e in entries.values() if _dict(e).get("name") == self.name]
            if self.id is None and named:  # an inline output: each run adds an entry, the last wins
                return kind, named[-1].get("result" if kind == "result" else "unmetCondition")
        return None

    def awaited(self, since: datetime, requested_at: datetime | None = None) -> AwaitedResults:
        """What a call waits for once submitted: this output, written since ``since``."""
        return AwaitedResults(
            analysis=False,
            output_ids=(self.id,) if self.id else (),
            output_names=() if self.id else (self.name,),
            since=since,
            requested_at=requested_at,
        )


def run_started(context: Context) -> datetime:
    """When this dag run began running (Airflow's clock), moved back by
    :data:`~airflow_provider_vapi.wire.skew.CLOCK_SKEW` (:func:`~airflow_provider_vapi.wire.skew.looking_back`):
    it is compared with ``structuredOutputsLastUpdatedAt``, which Vapi's clock stamps, so a result an
    earlier try asked for is found even when Vapi's clock is behind. A retry keeps it, a clear (which
    starts the run again) moves it, so a clear extracts again (once the earlier results are older
    than the margin) and a retry does not."""
    dag_run = context.get("dag_run")
    for name in ("start_date", "queued_at"):
        stamp = getattr(dag_run, name, None)
        if isinstance(stamp, datetime):
            return looking_back(stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC))
    began = getattr(context["ti"], "start_date", None)
    return looking_back(began if isinstance(began, datetime) else datetime.now(UTC))


def freshness(ref: OutputRef, context: Context) -> datetime:
    """Results written since this time are this run's: the run's start, or the output's last
    change if later (a result from an older definition is extracted again)."""
    since = run_started(context)
    return max(since, ref.updated_at) if ref.updated_at else since


def is_fresh(call: Call, ref: OutputRef, since: datetime) -> bool:
    """Whether ``call`` already holds this output's result written since ``since`` (or never
    will: nobody spoke in it)."""
    return ref.awaited(since).arrived(call)


def chunks(call_ids: Sequence[str], size: int = CHUNK_MAX) -> Iterator[list[str]]:
    for start in range(0, len(call_ids), size):
        yield list(call_ids[start : start + size])


# -- the submission -------------------------------------------------------------------------------


def submit_op(hook: VapiHook, body: Mapping[str, Any]) -> Op[dict[str, Any]]:
    """``POST /structured-output/run``, each answer judged by :func:`~.idempotency.create.judge_send`:
    resent when it certainly did not run (429, no connection: after the back-off; Vapi's own 500 or
    503: after the back-off and at least :data:`~.idempotency.create.ANSWERED_SETTLE` after the
    send, within the retry budget); a 4xx (or a 5xx that is not retried) is final; an answer lost
    in flight (timeout, dropped, 502, 504) raises :class:`VapiRunUnresolvedError`: the run may be
    under way."""
    settings = hook.settings
    attempts = Attempts(settings.policy)
    step = Send("POST", RUN_PATH, json=dict(body))
    while True:
        sent = time.monotonic()
        reply = yield step
        outcome = judge_send(reply)
        if outcome is SendOutcome.CREATED and isinstance(reply, httpx.Response):
            try:
                answer = reply.json()
            except ValueError:
                answer = None
            return answer if isinstance(answer, dict) else {}  # the 2xx says it runs
        if outcome is SendOutcome.IN_FLIGHT:
            raise VapiRunUnresolvedError(
                f"Vapi {step.where} got no clear answer ({describe(reply)}): the extraction may be "
                "under way, so it is not sent again. Its results on the calls will tell."
            )
        if isinstance(reply, httpx.Response) and not is_retryable_status(reply.status_code):
            raise_for(step, reply, settings.conn_id)  # a 4xx, or Vapi's own error that is final
        delay = attempts.next_delay(reply)
        if delay is None:
            raise_for(step, reply, settings.conn_id)
        if outcome is SendOutcome.ANSWERED:  # Vapi's own error: its processing is over, nothing ran
            delay = max(delay, ANSWERED_SETTLE - (time.monotonic() - sent))
        hook.log.warning(
            "Vapi %s %s (%s); nothing ran; sending again in %.1fs",
            step.where,
            "failed" if outcome is SendOutcome.ANSWERED else "refused",
            describe(reply),
            delay,
        )
        yield Sleep(delay)


# -- the memory across tries ----------------------------------------------------------------------


def _store(context: Context) -> Any:
    return context.get("task_state_store")  # type: ignore[call-overload]


def in_flight(context: Context, call_ids: Sequence[str], within: float) -> dict[str, float]:
    """The calls an earlier try submitted less than ``within`` seconds ago -> when (3.3+ only)."""
    store = _store(context)
    stored = store.get(STATE_KEY) if store is not None else None
    if not isinstance(stored, dict):
        return {}
    now = time.time()
    return {
        cid: float(stored[cid])
        for cid in call_ids
        if isinstance(stored.get(cid), int | float) and now - float(stored[cid]) < within
    }


def note_submitted(context: Context, call_ids: Sequence[str]) -> None:
    """Record, before sending, that these calls are being submitted now (3.3+; the store outlives
    the try, so a retry knows)."""
    store = _store(context)
    if store is None:
        return
    stored = store.get(STATE_KEY)
    merged = dict(stored) if isinstance(stored, dict) else {}
    now = time.time()
    merged.update(dict.fromkeys(call_ids, now))
    store.set(STATE_KEY, merged)


def forget_submitted(context: Context, call_ids: Sequence[str]) -> None:
    """Undo :func:`note_submitted` for calls whose run Vapi certainly did not start (it refused the
    request, or failed with its own error every time): a retry asks for them again at once instead
    of waiting for results that cannot come (3.3+)."""
    store = _store(context)
    stored = store.get(STATE_KEY) if store is not None else None
    if not isinstance(stored, dict):
        return
    gone = set(call_ids)
    store.set(STATE_KEY, {cid: when for cid, when in stored.items() if cid not in gone})


def settle_earlier_runs(
    hook: VapiHook, context: Context, ref: OutputRef, since: datetime, calls: list[Call], poll: float
) -> list[Call]:
    """On a retry without a state store (Airflow 2.11) an earlier try may have submitted these
    calls, its results still being written: wait for them up to ``create_settle_seconds`` after
    this try began. Returns the calls still without a fresh result (those are submitted again);
    on a first try, or with a store (which :func:`in_flight` read), ``calls`` at once."""
    first_try = int(getattr(context["ti"], "try_number", 1) or 1) <= 1
    if first_try or not calls or _store(context) is not None:
        return calls
    began = getattr(context["ti"], "start_date", None)
    start = began.timestamp() if isinstance(began, datetime) else time.time()
    until = start + hook.settings.create_settle
    missing = calls
    while missing and time.time() < until:
        hook.log.info(
            "Retry: %d call(s) have no fresh %r yet; an earlier try may have asked for them. "
            "Waiting up to %.0fs before asking again.",
            len(missing),
            ref.name,
            until - time.time(),
        )
        time.sleep(min(poll, max(0.0, until - time.time())))
        missing = [c for c in (hook.get_call(c.id) for c in missing) if not is_fresh(c, ref, since)]
    return missing
