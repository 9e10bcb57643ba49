"""Idempotency: why a retry never dials a person twice, all in one place.

Vapi has no idempotency key of its own, so the provider carries one in the call's metadata, which
Vapi echoes back on the ``Call``. This module owns every part of that:

* **the key** (:func:`task_key`): ``<dag>/<run>/<task>/<map index>``, the same for every try of one
  task instance; a batch's customers get ``<key>:<i>`` (:func:`batch_key`) and a deliberate redial
  ``<key>~<try>`` (:func:`redial_key`); :func:`carries_key` matches all three forms;
* **writing it** into a request (:func:`keyed_body`): single, batch, squad and workflow calls;
* **reading it** back from a ``Call`` (:func:`key_of`);
* **the reconciliation after an ambiguous failure** (:func:`create_op`): a create that timed out,
  lost its connection or got a 5xx may have created the call, so before it is ever sent again the
  calls created since just before the attempt are listed and the one carrying the key is returned;
* **a retry of the task** (:func:`earlier_calls`, :func:`key_for_try`, :func:`remember`): the ids an
  earlier try saved in the task state store, else the calls on Vapi's side carrying the key.

The operations here follow the hook's generator protocol (:mod:`airflow_provider_vapi.transport`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

import httpx

from airflow_provider_vapi.models import Call, CallBatchResponse, CallOutcome, CreateCallRequest
from airflow_provider_vapi.retries import is_retryable_status
from airflow_provider_vapi.transport import Attempts, Log, Op, Send, Sleep, describe, raise_for

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

    from airflow_provider_vapi.hooks import VapiHook

#: Metadata key carrying the idempotency key on the wire.
IDEMPOTENCY_METADATA_KEY: Final = "airflowIdempotencyKey"
#: How far before an attempt the reconciliation looks for the call it may have created: covers clock
#: skew between this worker and Vapi. The key, not the window, decides the match.
RECONCILE_LOOKBACK: Final = timedelta(minutes=10)
#: Task state store key (Airflow 3.3+) of the ids a try placed: survives the try, read by the next.
STATE_KEY: Final = "vapi_call_ids"
#: Outcomes after which ``redial_on_retry`` may place a fresh call: the person was never reached.
REDIALABLE: Final = frozenset({CallOutcome.NOT_REACHED, CallOutcome.VOICEMAIL})


# -- the key ------------------------------------------------------------------------------------


def task_key(context: Context) -> str:
    """Stable across retries of one task instance, distinct across runs and map indexes."""
    ti = context["ti"]
    return f"{ti.dag_id}/{ti.run_id}/{ti.task_id}/{getattr(ti, 'map_index', -1)}"


def batch_key(key: str, index: int) -> str:
    """The key of the ``index``-th customer of a batch created with ``key``."""
    return f"{key}:{index}"


def redial_key(key: str, try_number: int) -> str:
    """The key of a deliberate redial (``redial_on_retry``) on try ``try_number``."""
    return f"{key}~{try_number}"


def carries_key(call_key: str | None, key: str) -> bool:
    """The call was created with ``key``: exactly, as a batch customer, or as a redial."""
    if not call_key or not call_key.startswith(key):
        return False
    return len(call_key) == len(key) or call_key[len(key)] in ":~"


# -- in the request, on the call ----------------------------------------------------------------


def _put(target: dict[str, Any], outer_name: str, inner_name: str, key: str) -> None:
    """Write the key at ``target[outer_name][inner_name]``, keeping what is there."""
    outer = target.get(outer_name)
    if not isinstance(outer, dict):
        outer = target[outer_name] = {}
    inner = outer.get(inner_name)
    if not isinstance(inner, dict):
        inner = outer[inner_name] = {}
    inner[IDEMPOTENCY_METADATA_KEY] = key


def keyed_body(request: CreateCallRequest, key: str) -> dict[str, Any]:
    """The body to send, carrying ``key`` in the metadata Vapi echoes back on the created call(s).

    Assistant calls: ``assistantOverrides.metadata``; squad calls: ``squadOverrides.metadata`` (an
    ``AssistantOverrides`` applied to every member). ``WorkflowOverrides`` has no metadata, so
    workflow calls carry it in ``workflowOverrides.variableValues`` (echoed, and harmless: a variable
    no prompt uses). Batches get one key per customer, :func:`batch_key`, in that customer's
    overrides; a workflow batch has no per-customer overrides and carries the plain key. The user's
    own metadata is kept.
    """
    wire = request.to_wire()
    overrides = "squadOverrides" if request.source == "squad" else "assistantOverrides"
    if request.source == "workflow":
        _put(wire, "workflowOverrides", "variableValues", key)
    elif wire.get("customers"):
        for index, customer in enumerate(wire["customers"]):
            _put(customer, overrides, "metadata", batch_key(key, index))
    else:
        _put(wire, overrides, "metadata", key)
    return wire


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def key_of(call: Call) -> str | None:
    """The key :func:`keyed_body` put in, wherever Vapi echoed it."""
    customer = _dict(call.customer)
    places = (
        _dict(call.assistant_overrides).get("metadata"),
        _dict(call.squad_overrides).get("metadata"),
        _dict(customer.get("assistantOverrides")).get("metadata"),
        _dict(customer.get("squadOverrides")).get("metadata"),
        _dict(call.workflow_overrides).get("variableValues"),
    )
    for place in places:
        value = _dict(place).get(IDEMPOTENCY_METADATA_KEY)
        if isinstance(value, str):
            return value
    return None


# -- the reconciliation after an ambiguous failure ------------------------------------------------


def narrowing(request: CreateCallRequest) -> dict[str, Any]:
    """List filters every call of this request matches: fewer calls to page through."""
    return {"assistantId": request.assistant_id, "phoneNumberId": request.phone_number_id}


def find_op(hook: VapiHook, key: str, since: datetime, filters: Mapping[str, Any]) -> Op[list[Call]]:
    """The calls created since ``since`` that carry ``key``, oldest first."""
    calls = yield from hook._list_calls_op(None, {**filters, "createdAtGe": since})
    found = [c for c in calls if carries_key(key_of(c), key)]
    return sorted(found, key=lambda c: c.created_at or since)


def _result(request: CreateCallRequest, calls: list[Call]) -> Call | CallBatchResponse:
    return CallBatchResponse(results=calls, errors=[]) if request.customers else calls[0]


def create_op(hook: VapiHook, request: CreateCallRequest, key: str) -> Op[Call | CallBatchResponse]:
    """``POST /call`` that is never sent again while an earlier attempt may have created the call.

    A 429 is refused before anything is created: retried like a read. A 5xx, a timeout or a
    dropped connection is *ambiguous*: after the back-off the hook looks for a call carrying the key
    and returns it; it sends again only when there is none.
    """
    step = Send("POST", "/call", json=keyed_body(request, key))
    attempts = Attempts(hook.settings.policy)
    since = datetime.now(UTC) - RECONCILE_LOOKBACK
    filters = narrowing(request)
    while True:
        reply = yield step
        if isinstance(reply, httpx.Response):
            if reply.is_success:
                data = reply.json()
                if "results" in data:
                    return CallBatchResponse.model_validate(data)
                return Call.model_validate(data)
            if not is_retryable_status(reply.status_code):
                raise_for(step, reply, hook.vapi_conn_id)
        ambiguous = not (isinstance(reply, httpx.Response) and reply.status_code == 429)
        delay = attempts.next_delay(reply)
        if delay is None:
            found = (yield from find_op(hook, key, since, filters)) if ambiguous else []
            if found:
                return _result(request, found)
            raise_for(step, reply, hook.vapi_conn_id)
        hook.log.warning(
            "Creating the Vapi call failed (%s), attempt %d; %s in %.1fs",
            describe(reply),
            attempts.attempt,
            "checking whether it was created anyway" if ambiguous else "retrying",
            delay,
        )
        yield Sleep(delay)
        if ambiguous:
            found = yield from find_op(hook, key, since, filters)
            if found:
                hook.log.info("The earlier attempt did create the call(s); not dialling again.")
                return _result(request, found)


# -- a retry of the task --------------------------------------------------------------------------


def earlier_calls(hook: VapiHook, context: Context, key: str, request: CreateCallRequest) -> list[Call]:
    """Calls an earlier try of this task instance placed (task state store, then Vapi)."""
    ti = context["ti"]
    if int(getattr(ti, "try_number", 1) or 1) <= 1:
        return []
    store = context.get("task_state_store")  # type: ignore[call-overload]
    if store is not None:
        stored = store.get(STATE_KEY)
        if isinstance(stored, list) and stored:
            hook.log.info("Re-attaching to call(s) %s saved by an earlier try.", stored)
            return [hook.get_call(str(cid)) for cid in stored]
    dag_run = context.get("dag_run")
    since = getattr(dag_run, "start_date", None) or getattr(dag_run, "queued_at", None)
    since = since or datetime.now(UTC) - timedelta(days=1)
    found = hook.find_calls(key, created_after=since, **narrowing(request))
    # A single call may have been redialled on an earlier retry: the newest one counts.
    return found if request.customers is not None else found[-1:]


def key_for_try(
    context: Context, key: str, earlier: list[Call], *, redial_on_retry: bool, log: Log
) -> str | None:
    """The key to create with on this try, or ``None`` when the earlier call(s) must be reused."""
    if not earlier:
        return key
    if redial_on_retry and all(c.is_ended and c.outcome in REDIALABLE for c in earlier):
        log.warning(
            "redial_on_retry: the earlier call(s) %s never reached the person (%s); dialling again.",
            [c.id for c in earlier],
            [c.ended_reason for c in earlier],
        )
        return redial_key(key, int(getattr(context["ti"], "try_number", 1)))
    log.info("An earlier try already placed call(s) %s; not dialling again.", [c.id for c in earlier])
    return None


def remember(context: Context, call_ids: list[str]) -> None:
    """Save the ids where the next try of this task instance finds them (Airflow 3.3+)."""
    store = context.get("task_state_store")  # type: ignore[call-overload]
    if store is not None and call_ids:
        store.set(STATE_KEY, list[Any](call_ids))
