"""What a retried or cleared task instance already has of its campaign, and what it re-attaches to.

The person rule (:mod:`airflow_provider_vapi.idempotency.persons`) holds across the campaigns of one
dag run's task: a retried or cleared task instance that creates its campaign leaves out the customers
already in another campaign of the task (a row that moved to another chunk of a mapped campaign
task), and one that re-attaches reports the customers of its list that no campaign of the task has.
The campaigns are found by their name tag (:mod:`.once`), through :class:`~.api.CampaignApi`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from airflow_provider_vapi.campaigns.api import CampaignApi
from airflow_provider_vapi.campaigns.models import Campaign
from airflow_provider_vapi.campaigns.once import find_campaigns_op, legacy_marker, marker
from airflow_provider_vapi.idempotency.persons import identity
from airflow_provider_vapi.placing.retry import (
    claim_try,
    had_earlier_try,
    may_have_earlier,
    run_began,
    wait_out_earlier_send,
)
from airflow_provider_vapi.wire.skew import looking_back

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

    from airflow_provider_vapi.hook.core import VapiHook

#: Task state store key (Airflow 3.3+): the campaign an earlier try created.
CAMPAIGN_STATE_KEY: Final = "vapi_campaign_id"


@dataclass
class CampaignPlan:
    """What this dag run's task already has: this task instance's campaign, and the persons already
    in the task's other campaigns (other map indexes)."""

    own: Campaign | None = None
    others: list[Campaign] = field(default_factory=list)
    called: set[tuple[Any, ...]] = field(default_factory=set)

    def new_customers(self, customers: Iterable[Any]) -> tuple[list[Any], list[Any]]:
        """``customers`` split into those no campaign of the task has, and those one has."""
        fresh: list[Any] = []
        taken: list[Any] = []
        for customer in customers:
            (taken if _person(customer) in self.called else fresh).append(customer)
        return fresh, taken


def _person(customer: Any) -> tuple[Any, ...]:
    return identity({"number": customer} if isinstance(customer, str) else customer)


def _task_campaigns(hook: VapiHook, context: Context, key: str) -> tuple[list[Campaign], list[Campaign]]:
    """Every campaign of this dag run's task, and those of this task instance (its own tag, or the
    tag provider versions before the person rule gave it, so that an upgrade between two tries
    does not create a second campaign)."""
    began = run_began(context)
    task = CampaignApi(hook).find(key, began, whole_task=True)
    legacy = legacy_marker(context)
    if not task:
        task = hook._run(find_campaigns_op(hook, key, looking_back(began), tag=legacy))
    own = [c for c in task if c.name.endswith(marker(key)) or c.name.endswith(legacy)]
    return task, own


def plan_campaign(hook: VapiHook, context: Context, key: str) -> CampaignPlan:
    """The campaign an earlier try (or run, before a clear) of this task instance created: from
    the task state store, else on Vapi by the name tag, over the whole dag run (after waiting out a
    create an earlier try may still have in flight); and the persons the task's other campaigns
    already have. A fresh run's first try has nothing to look for (:func:`~.retry.may_have_earlier`)."""
    plan = CampaignPlan()
    claim_try(context)
    if not may_have_earlier(context):
        return plan
    store = context.get("task_state_store")  # type: ignore[call-overload]
    stored = store.get(CAMPAIGN_STATE_KEY) if store is not None else None
    task, own = _task_campaigns(hook, context, key)
    if isinstance(stored, str) and stored:
        hook.log.info("Re-attaching to campaign %s, created by an earlier try.", stored)
        plan.own = CampaignApi(hook).get(stored)
    else:
        if not own and had_earlier_try(context) and wait_out_earlier_send(hook, context):
            task, own = _task_campaigns(hook, context, key)
        if len(own) > 1:
            hook.log.warning(
                "Several campaigns carry this task's tag: %s; using the first.", [c.id for c in own]
            )
        plan.own = own[0] if own else None
    plan.others = [c for c in task if plan.own is None or c.id != plan.own.id]
    for other in plan.others:
        for page in CampaignApi(hook).iter_contact_pages(other.id):
            plan.called |= {_person(contact.number) for contact in page if contact.number}
    return plan


def remember_campaign(context: Context, campaign_id: str) -> None:
    """Save the id where the next try of this task instance finds it (Airflow 3.3+)."""
    store = context.get("task_state_store")  # type: ignore[call-overload]
    if store is not None:
        store.set(CAMPAIGN_STATE_KEY, campaign_id)
