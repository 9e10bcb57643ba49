"""A campaign is created once per task instance: its key, the create that is never sent twice, and
what a retried or cleared task re-attaches to.

``POST /v2/campaign`` has no idempotency key and a campaign has no metadata, so the key travels in
the one field every answer echoes: the **name**, as a ``[af:<12 hex>]`` suffix (a hash of the dag
run and task, :func:`~.keys.task_key`), ``[af:<12 hex>.<map index>]`` for a mapped task instance:
the same for every try. The campaign is then found by listing the campaigns created since the dag
run began, less :data:`~airflow_provider_vapi.wire.skew.CLOCK_SKEW` (``GET /v2/campaign``, a few per day
on a busy account), and matching the suffix.

What a retried or cleared task instance re-attaches to, and the persons the task's other campaigns
already have, is :mod:`.plan`'s.

The create is :func:`~.create.send_once_op`, the one a call uses: refused (429, no connection) is
sent again; anything else may have made the campaign, so it is looked for until it can no longer
appear (``create_settle_seconds`` after the send; a second after Vapi's own 5xx) before the
create is ever resent.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

import httpx

from airflow_provider_vapi.campaigns.models import Campaign, CampaignPage
from airflow_provider_vapi.idempotency.create import look_until, send_once_op
from airflow_provider_vapi.idempotency.keys import task_key
from airflow_provider_vapi.wire.paging import iso
from airflow_provider_vapi.wire.skew import looking_back
from airflow_provider_vapi.wire.transport import (
    Op,
    Send,
    decode_json,
    validate,
)

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

    from airflow_provider_vapi.hook.core import VapiHook

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
