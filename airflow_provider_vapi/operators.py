"""``PlaceCallOperator``: build, validate and place a Vapi call from templated parameters.

Retry-safe by construction: the call carries an idempotency key derived from the task instance
(dag, run, task, map index), so a retry of the same task instance finds the call its earlier try
placed, whether or not that try lived long enough to save the id, instead of dialling again.
"""

from __future__ import annotations

import json
import time
from collections.abc import Collection, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowFailException, BaseOperator, mask_secret
from pydantic import ValidationError

from airflow_provider_vapi.completion import (
    DEFAULT_ANALYSIS_GRACE_PERIOD,
    DEFAULT_FAILURE_OUTCOMES,
    normalize_outcomes,
)
from airflow_provider_vapi.hooks import VapiHook
from airflow_provider_vapi.links import XCOM_CALL_ID, XCOM_CALL_URL, VapiCallLink
from airflow_provider_vapi.models import (
    Call,
    CallBatchError,
    CallBatchResponse,
    CallOutcome,
    CreateCallRequest,
)
from airflow_provider_vapi.sensors import CallWaitMixin, _default_deferrable
from airflow_provider_vapi.templating import protect_vapi_placeholders

if TYPE_CHECKING:
    import jinja2
    from airflow.providers.common.compat.sdk import Context

STATE_KEY = "vapi_call_ids"
# Outcomes after which ``redial_on_retry`` may place a fresh call: the person was never reached.
_REDIALABLE = frozenset({CallOutcome.NOT_REACHED, CallOutcome.VOICEMAIL})


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge ``extra`` into a copy of ``base`` (dicts merge, everything else replaces)."""
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


class PlaceCallOperator(CallWaitMixin, BaseOperator):
    """Place an outbound Vapi phone call (or a batch) and hand the call id downstream.

    Every parameter below is templated. Airflow expressions (``{{ ds }}``, ``{{ params.x }}``,
    ``{{ ti.xcom_pull(...) }}``) are rendered; any other ``{{ ... }}`` (``{{name}}``,
    ``{{customer.number}}``) is one of Vapi's placeholders and reaches Vapi untouched, to be filled
    from ``variable_values`` at call time.

    :param vapi_conn_id: the Airflow connection of the Vapi account (default ``vapi_default``).
    :param assistant_id: a saved assistant's id. Exactly one of ``assistant_id``, ``assistant``,
        ``squad_id``, ``squad``, ``workflow_id``, ``workflow`` (possibly through ``payload``).
    :param assistant: an inline (transient) assistant, Vapi's camelCase JSON. Fields of the 2024
        API (``recordingEnabled``, ``serverUrl``, ``analysisPlan.structuredDataSchema`` ...) are
        moved to their current place with a warning.
    :param assistant_overrides: overrides for the assistant (camelCase JSON).
    :param assistant_version: a version of ``assistant_id``.
    :param squad_id: a saved squad's id, instead of an assistant.
    :param squad: an inline squad (its members' 2024 fields are upgraded like an assistant's).
    :param squad_overrides: overrides applied to every member of the squad.
    :param workflow_id: a saved workflow's id, instead of an assistant.
    :param workflow: an inline workflow.
    :param workflow_overrides: overrides for the workflow (``variableValues``).
    :param phone_number_id: the caller line (a number imported into Vapi); or else
    :param phone_number: a transient Twilio number (``twilioPhoneNumber``, ``twilioAccountSid``,
        ``twilioAuthToken``; the token is masked everywhere).
    :param customer: the person to call: an E.164 number string (``"+14155550123"``) or a dict
        (``number``, ``name``, ``extension``, ``email``, ``externalId`` ...).
    :param customer_id: a saved customer's id instead.
    :param customers: a list of customers (numbers or dicts): one batch request, one call each.
    :param variable_values: values for the assistant's ``{{placeholders}}``
        (``assistantOverrides.variableValues``).
    :param metadata: your correlation data (``assistantOverrides.metadata``, echoed on the call).
    :param schedule_plan: ``{"earliestAt": ..., "latestAt": ...}``: ring within that window.
    :param name: the call's name (40 characters at most).
    :param transport: Vapi's ``transport`` object.
    :param payload: a dict (or a ``.json`` template file) deep-merged last: anything else of
        ``POST /call``.
    :param strict_legacy: refuse old-API fields that Vapi no longer honours instead of dropping them.
    :param wait_for_completion: wait until the call has ended and return it (like
        ``CallStatusSensor``) instead of returning its id.
    :param deferrable: wait in the triggerer (default: ``[operators] default_deferrable``).
    :param poll_interval: seconds between status checks while waiting.
    :param timeout: seconds to wait for the call to end; then the call is ended
        (``manually-canceled``) and the task fails.
    :param failure_outcomes: outcome classes that fail the task when waiting (default ``error``).
    :param analysis_grace_period: seconds after the end to wait for the call's analysis.
    :param fail_on_batch_errors: fail the task when Vapi refused some customers of a batch
        (default ``True``); the calls that were placed go on either way and are in the XCom.
    :param redial_on_retry: on a retry of this task, place a fresh call when the earlier one
        never reached the person (busy, no answer, voicemail). Default ``False``: a retry always
        re-attaches to the call already placed and never dials again.

    XCom: ``call_id`` (the id, or the list of ids of a batch) and ``vapi_call_url`` are pushed the
    moment the call exists. Returns the id (a batch: ``{"call_ids": [...], "errors": [...]}``), or
    with ``wait_for_completion`` the final call as Vapi sends it plus ``outcome``.
    """

    template_fields: Sequence[str] = (
        "vapi_conn_id",
        "assistant_id",
        "assistant",
        "assistant_overrides",
        "assistant_version",
        "squad_id",
        "squad",
        "squad_overrides",
        "workflow_id",
        "workflow",
        "workflow_overrides",
        "phone_number_id",
        "phone_number",
        "customer",
        "customer_id",
        "customers",
        "variable_values",
        "metadata",
        "schedule_plan",
        "name",
        "transport",
        "payload",
    )
    template_ext: Sequence[str] = (".json",)
    template_fields_renderers = {
        "assistant": "json",
        "assistant_overrides": "json",
        "squad": "json",
        "workflow": "json",
        "phone_number": "json",
        "customer": "json",
        "customers": "json",
        "variable_values": "json",
        "metadata": "json",
        "payload": "json",
    }
    operator_extra_links = (VapiCallLink(),)
    ui_color = "#c8f7c5"

    def __init__(
        self,
        *,
        vapi_conn_id: str = VapiHook.default_conn_name,
        assistant_id: str | None = None,
        assistant: dict[str, Any] | None = None,
        assistant_overrides: dict[str, Any] | None = None,
        assistant_version: str | None = None,
        squad_id: str | None = None,
        squad: dict[str, Any] | None = None,
        squad_overrides: dict[str, Any] | None = None,
        workflow_id: str | None = None,
        workflow: dict[str, Any] | None = None,
        workflow_overrides: dict[str, Any] | None = None,
        phone_number_id: str | None = None,
        phone_number: dict[str, Any] | None = None,
        customer: str | dict[str, Any] | None = None,
        customer_id: str | None = None,
        customers: list[str | dict[str, Any]] | None = None,
        variable_values: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
        schedule_plan: dict[str, Any] | None = None,
        name: str | None = None,
        transport: dict[str, Any] | None = None,
        payload: dict[str, Any] | str | None = None,
        strict_legacy: bool = False,
        wait_for_completion: bool = False,
        deferrable: bool | None = None,
        poll_interval: float = 10.0,
        timeout: float | None = None,
        failure_outcomes: Collection[str | CallOutcome] = DEFAULT_FAILURE_OUTCOMES,
        analysis_grace_period: float = DEFAULT_ANALYSIS_GRACE_PERIOD,
        fail_on_batch_errors: bool = True,
        redial_on_retry: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.vapi_conn_id = vapi_conn_id
        self.assistant_id = assistant_id
        self.assistant = assistant
        self.assistant_overrides = assistant_overrides
        self.assistant_version = assistant_version
        self.squad_id = squad_id
        self.squad = squad
        self.squad_overrides = squad_overrides
        self.workflow_id = workflow_id
        self.workflow = workflow
        self.workflow_overrides = workflow_overrides
        self.phone_number_id = phone_number_id
        self.phone_number = phone_number
        self.customer = customer
        self.customer_id = customer_id
        self.customers = customers
        self.variable_values = variable_values
        self.metadata = metadata
        self.schedule_plan = schedule_plan
        self.name = name
        self.transport = transport
        self.payload = payload
        self.strict_legacy = strict_legacy
        self.wait_for_completion = wait_for_completion
        self.deferrable = _default_deferrable() if deferrable is None else deferrable
        self.poll_interval = poll_interval
        self.timeout = timeout
        self.failure_outcomes = normalize_outcomes(failure_outcomes)
        self.analysis_grace_period = analysis_grace_period
        self.fail_on_batch_errors = fail_on_batch_errors
        self.redial_on_retry = redial_on_retry
        self.end_call_on_timeout = True
        self.end_call_on_kill = True
        self._waiting_on: list[str] = []

    # -- templating -----------------------------------------------------------------------------

    def render_template(
        self,
        content: Any,
        context: Context,
        jinja_env: jinja2.Environment | None = None,
        seen_oids: set[int] | None = None,
    ) -> Any:
        """Render Airflow's expressions and leave Vapi's ``{{placeholders}}`` intact."""
        if isinstance(content, str) and not content.endswith(tuple(self.template_ext)):
            content = protect_vapi_placeholders(content, context)
        return super().render_template(content, context, jinja_env, seen_oids)

    def render_template_fields(self, context: Context, jinja_env: jinja2.Environment | None = None) -> None:
        """A template that cannot render is bad input: fail at once instead of retrying it."""
        import jinja2

        try:
            super().render_template_fields(context, jinja_env)
        except jinja2.TemplateError as exc:
            raise AirflowFailException(
                f"Task {self.task_id}: a templated parameter does not render ({type(exc).__name__}: {exc}); "
                "nothing was sent to Vapi. Vapi placeholders such as {{name}} pass through on their own; "
                "check the Airflow expressions."
            ) from exc

    # -- building the request -------------------------------------------------------------------

    @staticmethod
    def _customer(value: str | dict[str, Any]) -> dict[str, Any]:
        return {"number": value.strip()} if isinstance(value, str) else dict(value)

    def build_body(self) -> dict[str, Any]:
        """The ``POST /call`` body from the rendered parameters, before validation."""
        body: dict[str, Any] = {}
        simple = {
            "assistantId": self.assistant_id,
            "assistant": self.assistant,
            "assistantVersion": self.assistant_version,
            "squadId": self.squad_id,
            "squad": self.squad,
            "squadOverrides": self.squad_overrides,
            "workflowId": self.workflow_id,
            "workflow": self.workflow,
            "workflowOverrides": self.workflow_overrides,
            "phoneNumberId": self.phone_number_id,
            "phoneNumber": self.phone_number,
            "customerId": self.customer_id,
            "schedulePlan": self.schedule_plan,
            "name": self.name,
            "transport": self.transport,
        }
        body.update({k: v for k, v in simple.items() if v not in (None, "", {})})
        if self.customer not in (None, ""):
            body["customer"] = self._customer(self.customer)  # type: ignore[arg-type]
        if self.customers is not None:
            body["customers"] = [self._customer(c) for c in self.customers]
        overrides = dict(self.assistant_overrides or {})
        if self.variable_values:
            overrides["variableValues"] = {**overrides.get("variableValues", {}), **self.variable_values}
        if self.metadata:
            overrides["metadata"] = {**overrides.get("metadata", {}), **self.metadata}
        if overrides:
            body["assistantOverrides"] = overrides
        payload = self.payload
        if isinstance(payload, str):
            text = payload
            try:
                payload = json.loads(text) if text.strip() else None
            except ValueError as exc:
                raise AirflowFailException(f"payload is not valid JSON ({exc}): {text[:200]!r}") from exc
        if payload is not None and not isinstance(payload, dict):
            raise AirflowFailException(f"payload must render to a JSON object, not {type(payload).__name__}")
        return _merge(body, payload or {})

    def build_request(self) -> CreateCallRequest:
        """Validate the body; bad input fails the task at once, without retries."""
        try:
            request = CreateCallRequest.from_payload(self.build_body(), strict=self.strict_legacy)
        except (ValidationError, ValueError) as exc:
            raise AirflowFailException(
                f"Task {self.task_id}: the Vapi call request is invalid, nothing was sent.\n{exc}"
            ) from exc
        for secret in request.secret_values():
            mask_secret(secret)
        return request

    # -- idempotency ----------------------------------------------------------------------------

    @staticmethod
    def idempotency_key(context: Context) -> str:
        """Stable across retries of one task instance, distinct across runs and map indexes."""
        ti = context["ti"]
        map_index = getattr(ti, "map_index", -1)
        return f"{ti.dag_id}/{ti.run_id}/{ti.task_id}/{map_index}"

    def _earlier_calls(self, context: Context, key: str, request: CreateCallRequest) -> list[Call]:
        """Calls an earlier try of this task instance placed (task_state_store, then Vapi)."""
        ti = context["ti"]
        if int(getattr(ti, "try_number", 1) or 1) <= 1:
            return []
        hook = self.hook
        store = context.get("task_state_store")  # type: ignore[call-overload]
        if store is not None:
            stored = store.get(STATE_KEY)
            if isinstance(stored, list) and stored:
                self.log.info("Re-attaching to call(s) %s saved by an earlier try.", stored)
                return [hook.get_call(str(cid)) for cid in stored]
        dag_run = context.get("dag_run")
        since = getattr(dag_run, "start_date", None) or getattr(dag_run, "queued_at", None)
        since = since or datetime.now(UTC) - timedelta(days=1)
        found = hook.find_calls(key, created_after=since, **hook._narrowing(request))
        # A single call may have been redialled on an earlier retry: the newest one counts.
        return found if request.customers is not None else found[-1:]

    def _key_for_this_try(self, context: Context, base: str, earlier: list[Call]) -> str | None:
        """The key to create with, or ``None`` when the earlier call(s) must be reused."""
        if not earlier:
            return base
        if self.redial_on_retry and all(c.is_ended and c.outcome in _REDIALABLE for c in earlier):
            try_number = int(getattr(context["ti"], "try_number", 1))
            self.log.warning(
                "redial_on_retry: the earlier call(s) %s never reached the person (%s); dialling again.",
                [c.id for c in earlier],
                [c.ended_reason for c in earlier],
            )
            return f"{base}~{try_number}"
        self.log.info(
            "An earlier try already placed call(s) %s; not dialling again.", [c.id for c in earlier]
        )
        return None

    # -- execution ------------------------------------------------------------------------------

    def execute(self, context: Context) -> Any:
        request = self.build_request()
        base_key = self.idempotency_key(context)
        earlier = self._earlier_calls(context, base_key, request)
        key = self._key_for_this_try(context, base_key, earlier)
        if key is None:
            calls, errors = earlier, list[CallBatchError]()
        else:
            result = self.hook.create_call(request, idempotency_key=key)
            calls, errors = (
                (result.results, result.errors) if isinstance(result, CallBatchResponse) else ([result], [])
            )
        call_ids = [c.id for c in calls]
        batch = request.customers is not None
        self._remember(context, call_ids, batch)
        if errors:
            report = "; ".join(f"{(e.customer or {}).get('number', '?')}: {e.error}" for e in errors)
            self.log.error(
                "Vapi refused %d of %d customers: %s", len(errors), len(errors) + len(calls), report
            )
            if self.fail_on_batch_errors:
                raise AirflowFailException(
                    f"Vapi refused {len(errors)} customer(s) of the batch ({report}). The {len(calls)} "
                    f"call(s) placed go on: {call_ids}. Set fail_on_batch_errors=False to carry on."
                )
        if not self.wait_for_completion:
            if batch:
                return {
                    "call_ids": call_ids,
                    "errors": [e.model_dump(mode="json", by_alias=True) for e in errors],
                }
            return call_ids[0]
        self._waiting_on = call_ids
        settled = self._settled_calls(call_ids)
        if settled is not None:
            return self._finish(settled, single=not batch)
        if self.deferrable:
            self._defer_wait(call_ids, self.poll_interval, self.timeout)
        return self._poll_until_settled(call_ids, single=not batch)

    def _remember(self, context: Context, call_ids: list[str], batch: bool) -> None:
        """Publish the id(s) the moment they exist: XCom, the link, and the retry-proof store."""
        ti = context["ti"]
        ti.xcom_push(key=XCOM_CALL_ID, value=call_ids if batch else call_ids[0])
        if call_ids:
            ti.xcom_push(key=XCOM_CALL_URL, value=VapiHook.dashboard_url(call_ids[0]))
            self.log.info("Vapi call(s) placed: %s", ", ".join(VapiHook.dashboard_url(c) for c in call_ids))
        store = context.get("task_state_store")  # type: ignore[call-overload]
        if store is not None and call_ids:
            store.set(STATE_KEY, list[Any](call_ids))

    def _poll_until_settled(self, call_ids: list[str], single: bool) -> Any:
        deadline = self._deadline(self.timeout)
        while True:
            time.sleep(self.poll_interval)
            settled = self._settled_calls(call_ids)
            if settled is not None:
                return self._finish(settled, single)
            if deadline is not None and time.time() >= deadline:
                return self._complete(
                    {"status": "timeout", "call_ids": call_ids, "pending": call_ids}, single
                )

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        """Resumed from the trigger: apply the outcome policy, or end the calls on timeout."""
        # A batch may come through `payload` too: ask the body, not the `customers` parameter.
        return self._complete(event, single="customers" not in self.build_body())

    def on_kill(self) -> None:
        """The task is being killed while waiting: end the live call(s) it placed."""
        if self._waiting_on:
            self._end_calls(self._waiting_on)
