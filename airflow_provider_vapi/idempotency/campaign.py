"""A campaign is created once per task instance: its key, the create that is never sent twice, and
what a retried or cleared task re-attaches to.

``POST /v2/campaign`` has no idempotency key and a campaign has no metadata, so the key travels in
the one field every answer echoes: the **name**, as a ``[af:<12 hex>]`` suffix (a hash of
:func:`~.keys.task_key`, the same for every try of one task instance). The campaign is then found
by listing the campaigns created since the dag run began (``GET /v2/campaign``, a few per day on a
busy account) and matching the suffix.

The create is :func:`~.create.send_once_op`, the one a call uses: refused (429, no connection) is
sent again; anything else may have made the campaign, so it is looked for until it can no longer
appear (``create_settle_seconds`` after the send; a second after Vapi's own 5xx) before the
create is ever resent.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

import httpx

from airflow_provider_vapi.campaigns.models import Campaign, CampaignPage
from airflow_provider_vapi.idempotency.create import RECONCILE_LOOKBACK, look_until, send_once_op
from airflow_provider_vapi.idempotency.retry import run_began, wait_out_earlier_send
from airflow_provider_vapi.paging import iso
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


def marker(key: str) -> str:
    """The suffix that names the task instance in a campaign's name."""
    return f"[af:{hashlib.sha256(key.encode()).hexdigest()[:12]}]"


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


def find_campaigns_op(hook: VapiHook, key: str, since: datetime) -> Op[list[Campaign]]:
    """The campaigns created since ``since`` whose name carries ``key``, oldest first."""
    tag, found = marker(key), []
    for step in _pages(hook, since):
        page: CampaignPage = yield from hook._read_op(step, CampaignPage)
        found += [c for c in page.results if c.name.endswith(tag)]
        if not page.results or not page.has_next:
            break
    return sorted(found, key=lambda c: (c.created_at or since, c.id))


def create_campaign_op(hook: VapiHook, body: dict[str, Any], key: str) -> Op[Campaign]:
    """``POST /v2/campaign`` with ``key`` in the name, never sent again while an earlier attempt may
    still create the campaign (:func:`~.create.send_once_op`, the rules of calls)."""
    step = Send("POST", "/v2/campaign", json={**body, "name": keyed_name(str(body["name"]), key)})
    since = datetime.now(UTC) - RECONCILE_LOOKBACK
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


def earlier_campaign(hook: VapiHook, context: Context, key: str) -> Campaign | None:
    """The campaign an earlier try (or run, before a clear) of this task instance created: from
    the task state store, else on Vapi by the name tag, over the whole dag run; after waiting out
    a create an earlier try may still have in flight."""
    ti = context["ti"]
    if int(getattr(ti, "try_number", 1) or 1) <= 1:
        return None
    store = context.get("task_state_store")  # type: ignore[call-overload]
    stored = store.get(CAMPAIGN_STATE_KEY) if store is not None else None
    if isinstance(stored, str) and stored:
        hook.log.info("Re-attaching to campaign %s, created by an earlier try.", stored)
        return hook.campaigns.get(stored)
    found = hook.campaigns.find(key, run_began(context))
    if not found and wait_out_earlier_send(hook, context):
        found = hook.campaigns.find(key, run_began(context))
    if len(found) > 1:
        hook.log.warning(
            "Several campaigns carry this task's tag: %s; using the first.", [c.id for c in found]
        )
    return found[0] if found else None


def remember_campaign(context: Context, campaign_id: str) -> None:
    """Save the id where the next try of this task instance finds it (Airflow 3.3+)."""
    store = context.get("task_state_store")  # type: ignore[call-overload]
    if store is not None:
        store.set(CAMPAIGN_STATE_KEY, campaign_id)
