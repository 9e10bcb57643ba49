"""A campaign is created once per task instance: its key, the create that is never sent twice, and
what a retried or cleared task re-attaches to.

``POST /v2/campaign`` has no idempotency key and a campaign has no metadata, so the key travels in
the one field every answer echoes: the **name**, as a ``[af:<12 hex>]`` suffix (a hash of
:func:`~.keys.task_key`, the same for every try of one task instance). The campaign is then found
by listing the campaigns created since the dag run began (``GET /v2/campaign``, a few per day on a
busy account) and matching the suffix.

The create is judged like a call's (:func:`~.create.judge_send`): refused (429, no connection) is
sent again; anything else may have made the campaign, so it is looked for until it can no longer
appear (``create_settle_seconds`` after the send; a second after Vapi's own 5xx) before the
create is ever resent.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

import httpx

from airflow_provider_vapi.campaigns.models import Campaign, CampaignPage
from airflow_provider_vapi.exceptions import VapiCreateUnresolvedError, VapiError, VapiResponseError
from airflow_provider_vapi.idempotency.create import (
    ANSWERED_SETTLE,
    RECONCILE_LOOKBACK,
    SendOutcome,
    judge_send,
)
from airflow_provider_vapi.idempotency.retry import run_began, wait_out_earlier_send
from airflow_provider_vapi.paging import iso
from airflow_provider_vapi.retries import is_retryable_status
from airflow_provider_vapi.transport import (
    Attempts,
    Op,
    Send,
    Sleep,
    decode_json,
    describe,
    raise_for,
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


def _look_until(hook: VapiHook, key: str, since: datetime, until: float) -> Op[Campaign | None]:
    """Look for the campaign until found, or until a listing that began after ``until`` found none."""
    pause = 0.25
    while True:
        began = time.monotonic()
        try:
            found = yield from find_campaigns_op(hook, key, since)
        except VapiError as exc:
            raise VapiCreateUnresolvedError(
                f"Creating the Vapi campaign got no clear answer, and Vapi could not be asked whether "
                f"it made it ({exc}). Not sending it again: that could call everyone twice. A retry "
                f"of the task looks for it by its name tag {marker(key)} first."
            ) from exc
        if found or began >= until:
            return found[0] if found else None
        hook.log.info("No campaign tagged %s yet; Vapi may still be creating it. Looking again.", marker(key))
        yield Sleep(min(pause, max(0.0, until - time.monotonic()) + 0.001))
        pause = min(pause * 2, 5.0)


def create_campaign_op(hook: VapiHook, body: dict[str, Any], key: str) -> Op[Campaign]:
    """``POST /v2/campaign`` with ``key`` in the name, never sent again while an earlier attempt may
    still create the campaign (the rules of :func:`~.create.create_op`)."""
    step = Send("POST", "/v2/campaign", json={**body, "name": keyed_name(str(body["name"]), key)})
    attempts = Attempts(hook.settings.policy)
    since = datetime.now(UTC) - RECONCILE_LOOKBACK
    while True:
        sent = time.monotonic()
        reply = yield step
        verdict = judge_send(reply)
        if verdict is SendOutcome.CREATED:
            assert isinstance(reply, httpx.Response)
            try:
                return validate(
                    Campaign, decode_json(step, reply, hook.vapi_conn_id), step, reply, hook.vapi_conn_id
                )
            except VapiResponseError:
                pass  # it was created: look for it below
        elif verdict is SendOutcome.ANSWERED and not is_retryable_status(reply.status_code):  # type: ignore[union-attr]
            raise_for(step, reply, hook.vapi_conn_id)
        delay = attempts.next_delay(reply)
        if verdict is not SendOutcome.REFUSED:
            settle = ANSWERED_SETTLE if verdict is SendOutcome.ANSWERED else hook.settings.create_settle
            found = yield from _look_until(hook, key, since, sent + settle)
            if found is not None:
                hook.log.info("The earlier attempt did create campaign %s; not creating it again.", found.id)
                return found
            if verdict is SendOutcome.CREATED:
                raise VapiCreateUnresolvedError(
                    f"Vapi answered that it created the campaign, but its answer was unreadable and no "
                    f"campaign tagged {marker(key)} was listed within {settle:.0f}s. Not creating it "
                    "again; look for it in Vapi's dashboard."
                )
        if delay is None:
            raise_for(step, reply, hook.vapi_conn_id)
        hook.log.warning(
            "Creating the Vapi campaign failed (%s); sending it again in %.1fs.", describe(reply), delay
        )
        yield Sleep(delay)


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
