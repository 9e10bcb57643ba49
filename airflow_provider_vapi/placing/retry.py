"""A retried or cleared task: what may exist already, where it is found, and when it may dial."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from airflow_provider_vapi.exceptions import VapiStaleTryError
from airflow_provider_vapi.models import (
    Call,
    CallOutcome,
    CreateCallRequest,
)

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

    from airflow_provider_vapi.hook.core import VapiHook

from airflow_provider_vapi.idempotency.keys import narrowing

#: Task state store keys (Airflow 3.3+), read by the next try: the ids a try placed, and when a try
#: last sent a create (a retry then knows whether, and until when, that create may still appear).
STATE_KEY: Final = "vapi_call_ids"
SENT_KEY: Final = "vapi_create_sent_at"
#: The newest try of this task instance that has started (a stale try stands down, :func:`note_sending`).
TRY_KEY: Final = "vapi_live_try"
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


def may_have_earlier(context: Context) -> bool:
    """Whether anything of this task may already exist in this dag run: a retry (``try_number``
    above 1) or a cleared run (``clear_number`` above 0: a task instance that a clear created, such
    as a map index that a longer list added, starts at try 1). A fresh run's first try has nothing
    to look for, and skips the listing."""
    ti = context["ti"]
    if int(getattr(ti, "try_number", 1) or 1) > 1:
        return True
    return int(getattr(context.get("dag_run"), "clear_number", 0) or 0) > 0


def had_earlier_try(context: Context) -> bool:
    """This task instance ran before (a retry, or a try before a clear): it may have sent a create."""
    return int(getattr(context["ti"], "try_number", 1) or 1) > 1


def stored_calls(hook: VapiHook, context: Context) -> list[Call]:
    """The calls an earlier try of this task instance saved in the task state store (Airflow 3.3+)."""
    store = context.get("task_state_store")  # type: ignore[call-overload]
    stored = store.get(STATE_KEY) if store is not None else None
    if not (isinstance(stored, list) and stored):
        return []
    return [hook.get_call(str(cid)) for cid in stored]


def scope_calls(hook: VapiHook, context: Context, scope: str, request: CreateCallRequest) -> list[Call]:
    """Every call of this dag run and task, every map index and try (by the key, on Vapi), oldest first."""
    return hook.find_calls(scope, created_after=run_began(context), **narrowing(request))


def claim_try(context: Context) -> None:
    """Record that this try is the newest one running (Airflow 3.3+), before it looks for anything:
    a stale earlier try that is still alive (a worker that lost its heartbeat but not its process)
    then stands down instead of creating (:func:`note_sending`)."""
    store = context.get("task_state_store")  # type: ignore[call-overload]
    if store is not None:
        store.set(TRY_KEY, _try(context))


def note_sending(context: Context) -> None:
    """Record that this try is about to send a create (Airflow 3.3+: the store outlives the try), then
    stand down if a later try of this task instance has started meanwhile.

    Why this order is safe: this try writes ``SENT_KEY`` and then reads ``TRY_KEY``; a later try
    writes ``TRY_KEY`` (:func:`claim_try`) and then reads ``SENT_KEY`` (:func:`wait_out_earlier_send`).
    One of the two sees the other's write: either this try stands down, or the later one waits until
    this try's create can no longer appear, and finds it, before it creates anything.
    """
    store = context.get("task_state_store")  # type: ignore[call-overload]
    if store is None:
        return
    store.set(SENT_KEY, time.time())
    live = store.get(TRY_KEY)
    if isinstance(live, int) and live > _try(context):
        raise VapiStaleTryError(
            f"Try {_try(context)} of this task stands down without creating anything: try {live} of "
            "the same task instance is running (this worker lost its heartbeat and Airflow started "
            "the next try). That try finds or places the call."
        )


def _try(context: Context) -> int:
    return int(getattr(context["ti"], "try_number", 1) or 1)


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


def remember(context: Context, call_ids: list[str]) -> None:
    """Save the ids where the next try of this task instance finds them (Airflow 3.3+)."""
    store = context.get("task_state_store")  # type: ignore[call-overload]
    if store is not None and call_ids:
        store.set(STATE_KEY, list[Any](call_ids))
