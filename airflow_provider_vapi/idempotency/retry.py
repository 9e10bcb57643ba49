"""A retried or cleared task: what it re-attaches to, and when it may dial."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from airflow_provider_vapi.models import (
    Call,
    CallOutcome,
    CreateCallRequest,
)
from airflow_provider_vapi.transport import (
    Log,
)

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

    from airflow_provider_vapi.hooks import VapiHook

from airflow_provider_vapi.idempotency.keys import narrowing, redial_key, same_person

#: Task state store keys (Airflow 3.3+), read by the next try: the ids a try placed, and when a try
#: last sent a create (a retry then knows whether, and until when, that create may still appear).
STATE_KEY: Final = "vapi_call_ids"
SENT_KEY: Final = "vapi_create_sent_at"
#: Outcomes after which ``redial_on_retry`` may place a fresh call: the person was never reached.
REDIALABLE: Final = frozenset({CallOutcome.NOT_REACHED, CallOutcome.VOICEMAIL})


def run_began(context: Context) -> datetime:
    """When the dag run was created: the earliest of its timestamps that a clear does not reset
    (``run_after``, the logical date) and those it may (queued, started)."""
    dag_run = context.get("dag_run")
    names = ("run_after", "logical_date", "execution_date", "queued_at", "start_date")
    stamps = [getattr(dag_run, name, None) for name in names]
    known = [s for s in stamps if isinstance(s, datetime)]
    return min(known) if known else datetime.now(UTC) - timedelta(days=1)


def _stored_calls(hook: VapiHook, store: Any, request: CreateCallRequest, key: str) -> list[Call] | None:
    stored = store.get(STATE_KEY)
    if not (isinstance(stored, list) and stored):
        return None
    calls = [hook.get_call(str(cid)) for cid in stored]
    if all(same_person(c, request, key) for c in calls):
        hook.log.info("Re-attaching to call(s) %s saved by an earlier try.", stored)
        return calls
    hook.log.warning(
        "The call(s) %s saved by an earlier try went to other customers than this try's (the input "
        "changed): not reusing them.",
        stored,
    )
    return None


def earlier_calls(hook: VapiHook, context: Context, key: str, request: CreateCallRequest) -> list[Call]:
    """Calls an earlier try (or run, before a clear) of this task instance placed for the same
    customer(s): from the task state store, else on Vapi by the key, over the whole dag run."""
    ti = context["ti"]
    if int(getattr(ti, "try_number", 1) or 1) <= 1:
        return []
    store = context.get("task_state_store")  # type: ignore[call-overload]
    stored = _stored_calls(hook, store, request, key) if store is not None else None
    if stored is not None:
        return stored
    found = hook.find_calls(key, created_after=run_began(context), request=request, **narrowing(request))
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


def note_sending(context: Context) -> None:
    """Record that this try is about to send a create (Airflow 3.3+: the store outlives the try)."""
    store = context.get("task_state_store")  # type: ignore[call-overload]
    if store is not None:
        store.set(SENT_KEY, time.time())


def wait_out_earlier_send(hook: VapiHook, context: Context) -> bool:
    """An earlier try may have died with its create still in flight: wait until that create can no
    longer appear (``create_settle_seconds`` after it was sent; without a task state store, after
    this try began, as the send came before). ``False``: no earlier try sent one, nothing to wait for.
    Calls and campaigns alike."""
    store = context.get("task_state_store")  # type: ignore[call-overload]
    if store is not None:
        sent = store.get(SENT_KEY)
        if not isinstance(sent, int | float):
            return False  # no earlier try sent a create: nothing can be in flight
    else:
        began = getattr(context["ti"], "start_date", None)
        sent = began.timestamp() if isinstance(began, datetime) else time.time()
    left = float(sent) + hook.settings.create_settle - time.time()
    if left > 0:
        hook.log.info(
            "Nothing of an earlier try found; its create may still be in flight at Vapi. "
            "Looking again in %.0fs, before creating.",
            left,
        )
        time.sleep(left)
    return True


def settle_earlier_creates(
    hook: VapiHook, context: Context, key: str, request: CreateCallRequest
) -> list[Call]:
    """A retry found no call: wait out an earlier try's create (:func:`wait_out_earlier_send`),
    then look once more."""
    if not wait_out_earlier_send(hook, context):
        return []
    found = hook.find_calls(key, created_after=run_began(context), request=request, **narrowing(request))
    return found if request.customers is not None else found[-1:]


def remember(context: Context, call_ids: list[str]) -> None:
    """Save the ids where the next try of this task instance finds them (Airflow 3.3+)."""
    store = context.get("task_state_store")  # type: ignore[call-overload]
    if store is not None and call_ids:
        store.set(STATE_KEY, list[Any](call_ids))
