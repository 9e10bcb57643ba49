"""A campaign is created once per task instance: its key, the create that is never sent twice, and
what a retried or cleared task re-attaches to.

``POST /v2/campaign`` has no idempotency key and a campaign has no metadata, so the key travels in
the one field every answer echoes: the **name**, as a ``[af:<12 hex>]`` suffix (a hash of the dag
run and task, :func:`~.keys.task_key`), ``[af:<12 hex>.<map index>]`` for a mapped task instance:
the same for every try. The campaign is then found by listing the campaigns created since the dag
run began, less :data:`~airflow_provider_vapi.skew.CLOCK_SKEW` (``GET /v2/campaign``, a few per day
on a busy account), and matching the suffix.

The person rule (:mod:`.persons`) holds across the campaigns of one dag run's task: a retried or
cleared task instance that creates its campaign leaves out the customers already in another
campaign of the task (a row that moved to another chunk of a mapped campaign task), and one that
re-attaches reports the customers of its list that no campaign of the task has.

The create is :func:`~.create.send_once_op`, the one a call uses: refused (429, no connection) is
sent again; anything else may have made the campaign, so it is looked for until it can no longer
appear (``create_settle_seconds`` after the send; a second after Vapi's own 5xx) before the
create is ever resent.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

import httpx

from airflow_provider_vapi.campaigns.models import Campaign, CampaignPage
from airflow_provider_vapi.idempotency.create import look_until, send_once_op
from airflow_provider_vapi.idempotency.keys import task_key
from airflow_provider_vapi.idempotency.persons import identity
from airflow_provider_vapi.idempotency.retry import (
    claim_try,
    had_earlier_try,
    may_have_earlier,
    run_began,
    wait_out_earlier_send,
)
from airflow_provider_vapi.paging import iso
from airflow_provider_vapi.skew import looking_back
from airflow_provider_vapi.transport import (
    Op,
    Send,
    decode_json,
    validate,
)

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

    from airflow_provider_vapi.hooks import VapiHook

#: Task state store key (Airflow 3.3+): the campaign an earlier try created.
CAMPAIGN_STATE_KEY: Final = "vapi_campaign_id"
_LIST_PAGE: Final = 100


_INDEX_SEP: Final = "#"


def campaign_key(context: Context) -> str:
    """The key of this task instance's campaign: the dag run's task, and the map index if mapped."""
    index = getattr(context["ti"], "map_index", -1)
    scope = task_key(context)
    return f"{scope}{_INDEX_SEP}{index}" if isinstance(index, int) and index >= 0 else scope


def _scope_hash(key: str) -> str:
    return hashlib.sha256(key.partition(_INDEX_SEP)[0].encode()).hexdigest()[:12]


def marker(key: str) -> str:
    """The suffix that names the task instance in a campaign's name (:func:`campaign_key`)."""
    index = key.partition(_INDEX_SEP)[2]
    return f"[af:{_scope_hash(key)}{f'.{index}' if index else ''}]"


def legacy_marker(context: Context) -> str:
    """The tag provider versions before the person rule gave this task instance's campaign."""
    ti = context["ti"]
    old = f"{ti.dag_id}/{ti.run_id}/{ti.task_id}/{getattr(ti, 'map_index', -1)}"
    return f"[af:{hashlib.sha256(old.encode()).hexdigest()[:12]}]"


def of_scope(name: str, key: str) -> bool:
    """The campaign named ``name`` belongs to the dag run's task of ``key`` (any map index)."""
    return re.search(rf"\[af:{_scope_hash(key)}(\.\d+)?\]$", name) is not None


def keyed_name(name: str, key: str) -> str:
    """``name`` carrying ``key`` (a name that carries it already is kept as it is)."""
    tag = marker(key)
    return name if name.endswith(tag) else f"{name.rstrip()} {tag}"


def _pages(hook: VapiHook, since: datetime) -> Iterator[Send]:
    page = 1
    while True:
        params = {"createdAtGe": iso(since), "limit": _LIST_PAGE, "page": page, "sortOrder": "ASC"}
        yield Send("GET", "/v2/campaign", params=params)
        page += 1


def find_campaigns_op(
    hook: VapiHook, key: str, since: datetime, *, whole_task: bool = False, tag: str | None = None
) -> Op[list[Campaign]]:
    """The campaigns created since ``since`` (Vapi's clock) whose name carries ``key`` (with
    ``whole_task``: the tag of any map index of its dag run's task; with ``tag``: that tag instead),
    oldest first."""
    wanted = tag or marker(key)

    def keep(name: str) -> bool:
        return of_scope(name, key) if whole_task and tag is None else name.endswith(wanted)

    found: list[Campaign] = []
    for step in _pages(hook, since):
        page: CampaignPage = yield from hook._read_op(step, CampaignPage)
        found += [c for c in page.results if keep(c.name)]
        if not page.results or not page.has_next:
            break
    return sorted(found, key=lambda c: (c.created_at or since, c.id))


def create_campaign_op(hook: VapiHook, body: dict[str, Any], key: str) -> Op[Campaign]:
    """``POST /v2/campaign`` with ``key`` in the name, never sent again while an earlier attempt may
    still create the campaign (:func:`~.create.send_once_op`, the rules of calls)."""
    step = Send("POST", "/v2/campaign", json={**body, "name": keyed_name(str(body["name"]), key)})
    since = looking_back(datetime.now(UTC))
    tag = marker(key)

    def look(until: float) -> Op[Campaign | None]:
        found = yield from look_until(
            hook, lambda: find_campaigns_op(hook, key, since), until, "campaign", tag
        )
        return found[0] if found else None

    def read(reply: httpx.Response) -> Campaign:
        return validate(Campaign, decode_json(step, reply, hook.vapi_conn_id), step, reply, hook.vapi_conn_id)

    campaign: Campaign = yield from send_once_op(hook, step, read=read, look=look, what="campaign", tag=tag)
    return campaign


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
    task = hook.campaigns.find(key, began, whole_task=True)
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
        plan.own = hook.campaigns.get(stored)
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
        for page in hook.campaigns.iter_contact_pages(other.id):
            plan.called |= {_person(contact.number) for contact in page if contact.number}
    return plan


def remember_campaign(context: Context, campaign_id: str) -> None:
    """Save the id where the next try of this task instance finds it (Airflow 3.3+)."""
    store = context.get("task_state_store")  # type: ignore[call-overload]
    if store is not None:
        store.set(CAMPAIGN_STATE_KEY, campaign_id)
