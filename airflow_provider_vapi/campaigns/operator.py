"""``RunCampaignOperator``: one Vapi campaign from templated parameters, created once per task
instance, optionally waited for, cancelled when the wait times out or the task is killed."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any, Final

from airflow.providers.common.compat.sdk import AirflowFailException, AirflowSkipException, BaseOperator

from airflow_provider_vapi.campaigns.api import CampaignApi
from airflow_provider_vapi.campaigns.models import Campaign
from airflow_provider_vapi.campaigns.once import campaign_key
from airflow_provider_vapi.campaigns.plan import CampaignPlan, plan_campaign, remember_campaign
from airflow_provider_vapi.campaigns.request import (
    build_campaign_body,
    check_campaign_body,
    check_customers_path,
    customers_text,
    read_customers,
)
from airflow_provider_vapi.campaigns.waiting import CampaignWaitMixin, reach
from airflow_provider_vapi.hook.core import VapiHook
from airflow_provider_vapi.hook.links import (
    XCOM_CAMPAIGN_ID,
    XCOM_CAMPAIGN_URL,
    LinkUrlsMixin,
    VapiCampaignLink,
    campaign_url,
)
from airflow_provider_vapi.landing.files import storage_path
from airflow_provider_vapi.placing.retry import note_sending
from airflow_provider_vapi.rendering.gate import RenderingGate
from airflow_provider_vapi.secrets import find_secret_values, mask
from airflow_provider_vapi.waiting.task import default_deferrable

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

#: The templated parameters that make the body, in ``build_campaign_body``'s names.
BODY_FIELDS: Final = (
    "name", "assistant_id", "squad_id", "workflow_id", "phone_number_id", "customers", "schedule_plan",
    "max_concurrency", "assistant_overrides", "variable_values", "payload",
)  # fmt: skip


class RunCampaignOperator(LinkUrlsMixin, RenderingGate, CampaignWaitMixin, BaseOperator):
    """Create a Vapi campaign (``POST /v2/campaign``): Vapi calls up to 10,000 people, paced under
    ``max_concurrency``, and reports each contact's result.

    :param vapi_conn_id: the Airflow connection of the Vapi account (default ``vapi_default``).
    :param customers: the people to call: E.164 strings or customer dicts (``number``, ``name``,
        ``extension``, ``externalId`` ...), e.g. an upstream task's rows (``rows.output``) or
        ``"{{ ti.xcom_pull(task_ids='rows') }}"`` (rendered as a native list). An empty list skips
        the task. At most 10,000: map the task over ``campaigns.chunks(rows)`` for more.
    :param customers_path: instead of ``customers``, a ``.csv`` (header row), ``.jsonl`` or ``.json``
        file, local or object storage (``s3://...``, read through ``storage_conn_id``).
    :param customer_variables: fields of each customer row that are moved into that customer's
        ``variableValues`` (``["appointment"]``: the assistant says ``{{appointment}}``).
    :param name: the campaign's name (default ``<dag>.<task> <run id>``); a ``[af:...]`` tag naming
        the task instance is appended, so that a retry finds the campaign instead of making another.
    :param assistant_id: the saved assistant; or ``squad_id``; or ``workflow_id`` (exactly one).
    :param squad_id: a saved squad, instead of an assistant.
    :param workflow_id: a saved workflow, instead of an assistant.
    :param phone_number_id: the caller line (a number imported into Vapi).
    :param schedule_plan: ``{"earliestAt": ..., "latestAt": ...}`` (ISO 8601 or datetimes): calls
        start at ``earliestAt``; contacts not called by ``latestAt`` are skipped.
    :param max_concurrency: calls at once (Vapi's default 10).
    :param assistant_overrides: overrides for every call (``squadOverrides`` with ``squad_id``).
    :param variable_values: values for every call's ``{{placeholders}}``.
    :param payload: a dict deep-merged last: anything else of ``CreateCampaignDTO`` (``dialPlan``,
        ``server``, ``serverMessages``, ``predialPlan``).
    :param storage_conn_id: the connection for reading ``customers_path`` from object storage.
    :param wait_for_completion: wait until the campaign is over (default ``True``).
    :param deferrable: wait in the triggerer (default: ``[operators] default_deferrable``).
    :param poll_interval: seconds between reads of the campaign while waiting (default 30).
    :param timeout: seconds to wait; then the campaign is cancelled and the task fails.
    :param cancel_on_timeout: cancel the campaign when the wait times out (default ``True``):
        nobody not yet called is called; live calls finish.
    :param cancel_on_kill: cancel the campaign when the task is killed while waiting (default ``True``).

    XCom: ``campaign_id`` and ``vapi_campaign_url`` the moment the campaign exists. Returns its
    summary: ``campaign_id``, ``status``, ``ended_reason``, ``contacts`` and the ``counters`` and
    ``call_metrics`` Vapi reports (never the contacts: ``LoadCampaignContactsOperator`` or
    ``CampaignApi(VapiHook()).iter_contact_pages`` page through those).
    """

    template_fields: Sequence[str] = ("vapi_conn_id", *BODY_FIELDS, "customers_path", "storage_conn_id")
    template_fields_renderers = {"customers": "json", "assistant_overrides": "json", "payload": "json"}
    #: ``customers`` written as one ``{{ ... }}`` renders to the list it names (the rows are data).
    native_fields = frozenset({"customers"})
    keeps_vapi_placeholders = True
    operator_extra_links = (VapiCampaignLink(),)
    ui_color = "#c5e3f7"

    # Set from the constructor's arguments by name.
    customers: list[str | dict[str, Any]] | str | None
    customers_path: str | None
    storage_conn_id: str | None
    wait_for_completion: bool

    def __init__(
        self,
        *,
        vapi_conn_id: str = VapiHook.default_conn_name,
        customers: list[str | dict[str, Any]] | str | None = None,
        customers_path: str | None = None,
        customer_variables: Sequence[str] = (),
        name: str | None = None,
        assistant_id: str | None = None,
        squad_id: str | None = None,
        workflow_id: str | None = None,
        phone_number_id: str | None = None,
        schedule_plan: dict[str, Any] | None = None,
        max_concurrency: int | str | None = None,
        assistant_overrides: dict[str, Any] | None = None,
        variable_values: dict[str, Any] | None = None,
        payload: dict[str, Any] | None = None,
        storage_conn_id: str | None = None,
        wait_for_completion: bool = True,
        deferrable: bool | None = None,
        poll_interval: float = 30.0,
        timeout: float | None = None,
        cancel_on_timeout: bool = True,
        cancel_on_kill: bool = True,
        **kwargs: Any,
    ) -> None:
        given = dict(locals())
        super().__init__(**kwargs)
        for field in (
            *BODY_FIELDS,
            "vapi_conn_id",
            "customers_path",
            "storage_conn_id",
            "wait_for_completion",
        ):
            setattr(self, field, given[field])
        self.customer_variables = tuple(customer_variables)
        self.deferrable = default_deferrable() if deferrable is None else deferrable
        self.poll_interval = poll_interval
        self.timeout = timeout
        self.cancel_on_timeout = cancel_on_timeout
        self.cancel_on_kill = cancel_on_kill

    # -- the request ----------------------------------------------------------------------------

    def build_body(self, context: Context) -> dict[str, Any]:
        """The checked ``POST /v2/campaign`` body; bad input fails the task before anything is sent."""
        params = {field: getattr(self, field) for field in BODY_FIELDS}
        if self.customers_path:
            if params["customers"] is not None:
                raise AirflowFailException("Give customers or customers_path, not both.")
            params["customers"] = self._read_customers_file()
        if isinstance(params["max_concurrency"], str) and params["max_concurrency"].strip().isdigit():
            params["max_concurrency"] = int(params["max_concurrency"])
        params["name"] = params["name"] or self._default_name(context)
        body = build_campaign_body(params, self.customer_variables)
        mask(find_secret_values(body))
        if body.get("customers") == [] and not body.get("dialPlan"):
            raise AirflowSkipException(f"Task {self.task_id}: no customers to call; no campaign was created.")
        check_campaign_body(body, f"Task {self.task_id}: the campaign request")
        return body

    def _read_customers_file(self) -> list[dict[str, Any]]:
        # Every bad file is a clear, final error before anything is sent (campaigns/request.py).
        text = check_customers_path(self.customers_path)  # before storage is touched
        file = storage_path(text, self.storage_conn_id or None)
        return read_customers(customers_text(file, text), PurePosixPath(text).suffix.lower(), text)

    def _default_name(self, context: Context) -> str:
        ti = context["ti"]
        index = getattr(ti, "map_index", -1)
        return (
            f"{ti.dag_id}.{ti.task_id}{f'[{index}]' if index is not None and index >= 0 else ''} {ti.run_id}"
        )

    # -- execution ------------------------------------------------------------------------------

    def execute(self, context: Context) -> Any:
        body = self.build_body(context)
        key = campaign_key(context)
        plan = plan_campaign(self.hook, context, key)
        customers = body.get("customers") or []
        fresh, taken = plan.new_customers(customers)
        campaign = plan.own
        if campaign is not None:
            self._reattached(campaign, len(customers))
        else:
            if taken:
                self._left_out(plan, taken, len(customers))
                if not fresh:
                    raise AirflowSkipException(
                        f"Task {self.task_id}: every customer of this list is already in another campaign "
                        f"of this dag run's task ({[c.id for c in plan.others]}); no campaign was created."
                    )
                body = {**body, "customers": fresh}
            note_sending(context)
            campaign = CampaignApi(self.hook).create(body, key)
            self.log.info(
                "Created Vapi campaign %s for %d customers.", campaign.id, len(body.get("customers", []))
            )
        self._publish(context, campaign)
        if not self.wait_for_completion:
            return CampaignApi(self.hook).get(campaign.id).summary()
        return self._wait_for(CampaignApi(self.hook).get(campaign.id), self.poll_interval, self.timeout)

    def _left_out(self, plan: CampaignPlan, taken: list[Any], total: int) -> None:
        self.log.warning(
            "%d of the %d customers of this list are already in another campaign of this dag run's task "
            "(%s: their row moved to another task instance since): not calling them again.",
            len(taken),
            total,
            [c.id for c in plan.others],
        )

    def _reattached(self, campaign: Campaign, wanted: int) -> None:
        """An earlier try (or run, before a clear) made the campaign: never a second one."""
        campaign = CampaignApi(self.hook).get(campaign.id)
        self.log.info(
            "An earlier try already created Vapi campaign %s (%s): not creating another.",
            campaign.id,
            campaign.status,
        )
        if wanted and campaign.contact_counters is not None and campaign.counters.total != wanted:
            self.log.warning(
                "This try's list has %d customers; campaign %s has %d. Not creating a second campaign "
                "(that could call people twice): trigger a new run to call a changed list.",
                wanted,
                campaign.id,
                campaign.counters.total,
            )

    def _publish(self, context: Context, campaign: Campaign) -> None:
        """The id and the link the moment the campaign exists, and the id for the next try."""
        ti = context["ti"]
        ti.xcom_push(key=XCOM_CAMPAIGN_ID, value=campaign.id)
        self.push_link_url(ti, XCOM_CAMPAIGN_URL, campaign_url(campaign.id))
        remember_campaign(context, campaign.id)
        self._campaign_id = campaign.id
        self.log.info("Vapi campaign: %s", campaign_url(campaign.id))

    def on_kill(self) -> None:
        """Killed while waiting in the worker (or ``execution_timeout``): cancel the campaign."""
        self._killed()


__all__ = ["RunCampaignOperator", "reach"]
