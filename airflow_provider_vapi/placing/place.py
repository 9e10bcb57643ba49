"""Placing a task's calls: each person of the list once, whatever try, map index or position.

:func:`plan_calls` finds what already exists for this dag run and task (:mod:`.retry`), matched to
the persons of this try's list (:mod:`.persons`); :func:`place_planned` creates the calls of the
persons who have none, and returns every person's call in the list's order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_provider_vapi.idempotency.keys import key_of, redial_key, task_key
from airflow_provider_vapi.idempotency.persons import Match, match, person_key, tokens
from airflow_provider_vapi.models import Call, CallBatchError, CallBatchResponse, CreateCallRequest
from airflow_provider_vapi.placing.retry import (
    REDIALABLE,
    claim_try,
    had_earlier_try,
    may_have_earlier,
    note_sending,
    scope_calls,
    stored_calls,
    wait_out_earlier_send,
)

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

    from airflow_provider_vapi.hook.core import VapiHook


@dataclass
class CallPlan:
    """This try's list, person by person, and what already exists for those persons."""

    request: CreateCallRequest
    scope: str
    #: One token per person, in the list's order (a single call: one).
    people: list[str]
    earlier: Match = field(default_factory=Match)
    #: Person key -> the key of a deliberate redial on this try (``redial_on_retry``).
    redials: dict[str, str] = field(default_factory=dict)
    #: A mapped task instance: the other map indexes' persons are not this list's.
    mapped: bool = False
    #: The task's ``dedupe_key`` (part of each person, :mod:`.persons`).
    dedupe_key: Any = None

    @property
    def batch(self) -> bool:
        return self.request.customers is not None

    def left(self) -> list[Call]:
        """The calls of this dag run's task whose person the list no longer has: an unmapped
        batch's list is the task's whole list (a mapped one sees only its own part)."""
        return self.earlier.left if self.batch and not self.mapped else []

    @property
    def keys(self) -> list[str]:
        return [person_key(self.scope, p) for p in self.people]

    def reused(self) -> list[Call]:
        """The earlier calls this try re-attaches to (not those it redials)."""
        return [self.earlier.found[k] for k in self.keys if k in self.earlier.found and k not in self.redials]

    def to_place(self) -> list[int]:
        """Positions of the persons this try calls: nobody called yet, or a redial."""
        return [i for i, k in enumerate(self.keys) if k not in self.earlier.found or k in self.redials]


def _find(hook: VapiHook, context: Context, plan: CallPlan, dedupe_key: Any) -> Match:
    """What exists for the plan's persons: the task state store first, else Vapi, by the key."""
    stored = match(stored_calls(hook, context), plan.scope, plan.keys, key_of, dedupe_key)
    if stored.found and not stored.missing(plan.keys):
        hook.log.info(
            "Re-attaching to call(s) %s saved by an earlier try.", [c.id for c in stored.found.values()]
        )
        return stored
    return match(
        scope_calls(hook, context, plan.scope, plan.request), plan.scope, plan.keys, key_of, dedupe_key
    )


def plan_calls(
    hook: VapiHook,
    context: Context,
    request: CreateCallRequest,
    *,
    dedupe_key: Any = None,
    redial_on_retry: bool = False,
) -> CallPlan:
    """Each person of ``request`` and the call this dag run's task already has for them, if any."""
    index = getattr(context["ti"], "map_index", -1)
    plan = CallPlan(request, task_key(context), tokens(request, dedupe_key), dedupe_key=dedupe_key)
    plan.mapped = isinstance(index, int) and index >= 0
    claim_try(context)
    if not may_have_earlier(context):
        return plan
    plan.earlier = _find(hook, context, plan, dedupe_key)
    if plan.earlier.missing(plan.keys) and had_earlier_try(context) and wait_out_earlier_send(hook, context):
        # This task instance's earlier try may have died with a create in flight: look once more.
        plan.earlier = match(
            scope_calls(hook, context, plan.scope, request), plan.scope, plan.keys, key_of, dedupe_key
        )
    _report(hook, plan)
    if redial_on_retry:
        try_number = int(getattr(context["ti"], "try_number", 1))
        for key, call in plan.earlier.found.items():
            if call.is_ended and call.outcome in REDIALABLE and key in plan.keys:
                plan.redials[key] = redial_key(key, try_number)
    return plan


def _report(hook: VapiHook, plan: CallPlan) -> None:
    reused = [c.id for c in plan.earlier.found.values()]
    if reused:
        hook.log.info(
            "This dag run's task already called %d of the %d person(s) of this list: %s; not dialling "
            "them again.",
            len(reused),
            len(plan.keys),
            reused,
        )
    if plan.left():
        hook.log.warning(
            "Call(s) %s of this dag run's task went to people this try's list no longer has (their row "
            "left, or its number changed). They are not reused for anyone else; they are reported in "
            "the XCom as 'left'.",
            [c.id for c in plan.left()],
        )


def place_planned(
    hook: VapiHook, context: Context, plan: CallPlan
) -> tuple[list[Call], list[CallBatchError]]:
    """Create the calls of the persons who have none (and the redials); every person's call in the
    list's order, and the customers Vapi refused."""
    positions = plan.to_place()
    if not positions:
        return plan.reused(), []
    if plan.redials:
        hook.log.warning(
            "redial_on_retry: the earlier call(s) %s never reached the person; dialling again.",
            [plan.earlier.found[k].id for k in plan.redials],
        )
    note_sending(context)
    tokens_sent = [_sent_token(plan, i) for i in positions]
    if not plan.batch:
        call = hook.create_call(plan.request, idempotency_key=person_key(plan.scope, tokens_sent[0]))
        assert isinstance(call, Call)
        return [call], []
    assert plan.request.customers is not None
    part = plan.request.model_copy(update={"customers": [plan.request.customers[i] for i in positions]})
    answer = hook.create_call(part, idempotency_key=plan.scope, person_tokens=tokens_sent)
    assert isinstance(answer, CallBatchResponse)
    new = match(answer.results, plan.scope, plan.keys, key_of, plan.dedupe_key).found
    calls = [new.get(k) or plan.earlier.found.get(k) for k in plan.keys]
    return [c for c in calls if c is not None], answer.errors


def _sent_token(plan: CallPlan, position: int) -> str:
    key = plan.keys[position]
    redial = plan.redials.get(key)
    return redial[len(plan.scope) + 1 :] if redial else plan.people[position]
