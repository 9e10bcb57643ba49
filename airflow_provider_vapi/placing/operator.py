"""``PlaceCallOperator``: build, validate and place a Vapi call from templated parameters.

Retry-safe by construction: :mod:`airflow_provider_vapi.idempotency` gives each call a key derived
from the dag run, the task and the person called (not the map index or the position in a list), so a
retry, a clear, or a row that moved finds the call already placed for that person, whether or not
the try that placed it lived long enough to save the id, instead of dialling again. Waiting (``wait_for_completion``) is :mod:`airflow_provider_vapi.waiting.task`'s.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Any, Final

from airflow.providers.common.compat.sdk import AirflowFailException, BaseOperator
from pydantic import ValidationError

from airflow_provider_vapi.exceptions import VapiCallFailedError, VapiError, VapiInvalidRequestError
from airflow_provider_vapi.hook.core import VapiHook
from airflow_provider_vapi.hook.links import (
    XCOM_CALL_ID,
    XCOM_CALL_URL,
    LinkUrlsMixin,
    VapiCallLink,
    dashboard_url,
)
from airflow_provider_vapi.models import (
    Call,
    CallBatchError,
    CallOutcome,
    CreateCallRequest,
)
from airflow_provider_vapi.placing import place, retry
from airflow_provider_vapi.placing.call_body import REQUEST_FIELDS, build_call_body
from airflow_provider_vapi.rendering.gate import RenderingGate
from airflow_provider_vapi.results import XComDetail, check_xcom_detail
from airflow_provider_vapi.secrets import REDACTED, find_secret_values, mask, redact_secrets
from airflow_provider_vapi.waiting.task import (
    DEFAULT_ANALYSIS_GRACE_PERIOD,
    DEFAULT_FAILURE_OUTCOMES,
    CallWaitMixin,
    WaitEvent,
    default_deferrable,
    normalize_outcomes,
)

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

#: Other constructor parameters that are stored as they are given.
_PLAIN_PARAMS: Final = (
    "vapi_conn_id",
    "strict_legacy",
    "check_nested",
    "wait_for_completion",
    "poll_interval",
    "timeout",
    "analysis_grace_period",
    "fail_on_batch_errors",
    "redial_on_retry",
    "dedupe_key",
)


def _refused_for_xcom(errors: list[CallBatchError], secrets: list[str]) -> list[dict[str, Any]]:
    """The batch's refusals without their secrets: XCom is stored as it is (Airflow's masker only
    works on logs and the Rendered tab), and Vapi's error text may quote what it refused."""
    refused = []
    for error in errors:
        entry = redact_secrets(error.model_dump(mode="json", by_alias=True))
        for secret in secrets:
            entry["error"] = str(entry.get("error", "")).replace(secret, REDACTED)
        refused.append(entry)
    return refused


def _who(customer: dict[str, Any] | None) -> str:
    """The refused customer as the user listed them: number, SIP URI, saved id, else name or row."""
    customer = customer or {}
    for field in ("number", "sipUri", "customerId", "name", "externalId"):
        if customer.get(field):
            return f"{field} {customer[field]}"
    return f"a customer with only {sorted(customer) or 'no fields'}"


class PlaceCallOperator(LinkUrlsMixin, RenderingGate, CallWaitMixin, BaseOperator):
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
    :param check_nested: check inline assistants, overrides, squads and customers against Vapi's
        schemas before sending (unknown keys with "did you mean", wrong types). Default ``True``;
        turn it off only to send a setting Vapi added after this provider's release.
    :param wait_for_completion: wait until the call has ended and return it (like
        ``CallStatusSensor``) instead of returning its id.
    :param deferrable: wait in the triggerer (default: ``[operators] default_deferrable``).
    :param poll_interval: seconds between status checks while waiting.
    :param timeout: seconds to wait for the call to end; then the call is ended
        (``manually-canceled``) and the task fails.
    :param failure_outcomes: outcome classes that fail the task when waiting (default ``error``).
    :param analysis_grace_period: seconds after the end to wait for the call's results (the
        analysis and the structured outputs its assistant configures; default 60).
    :param xcom_detail: with ``wait_for_completion``, what the XCom holds: ``"compact"`` (default,
        about 1.5 KiB a call), ``"transcript"`` or ``"full"`` (as ``CallStatusSensor``).
    :param fail_on_batch_errors: fail the task when Vapi refused some customers of a batch
        (default ``True``); the calls that were placed go on either way and are in the XCom.
    :param redial_on_retry: on a retry of this task, place a fresh call when the earlier one
        never reached the person (busy, no answer, voicemail). Default ``False``: a retry always
        re-attaches to the call already placed and never dials again.
    :param dedupe_key: what tells apart two rows that call the same number in one dag run (two
        appointments: ``dedupe_key`` = the appointment id). Within one dag run and task, each
        person (number, or ``customer_id``, plus this key) is called at most once, whatever map
        index, batch position or try the row lands on; without it, one number is one person (a batch
        that lists a number twice calls it twice, once per listing).

    XCom: ``call_id`` (the id, or the list of ids of a batch) and ``vapi_call_url`` are pushed the
    moment the call exists. Returns the id (a batch: ``{"call_ids": [...], "errors": [...], "left":
    [...]}``, ``left`` the calls of this dag run's task whose person the list no longer has), or
    with ``wait_for_completion`` the call's result (:func:`~airflow_provider_vapi.results.
    call_result`; a list for a batch).
    """

    template_fields: Sequence[str] = ("vapi_conn_id", *(name for name, _, _ in REQUEST_FIELDS), "dedupe_key")
    template_ext: Sequence[str] = (".json",)
    template_fields_renderers = {name: shown for name, _, shown in REQUEST_FIELDS if shown}
    operator_extra_links = (VapiCallLink(),)
    ui_color = "#c8f7c5"
    keeps_vapi_placeholders = True

    # Set from the constructor's arguments by name (see REQUEST_FIELDS and _PLAIN_PARAMS).
    strict_legacy: bool
    check_nested: bool
    wait_for_completion: bool
    poll_interval: float
    timeout: float | None
    fail_on_batch_errors: bool
    redial_on_retry: bool
    dedupe_key: str | None
    assistant_overrides: dict[str, Any] | None
    customer: str | dict[str, Any] | None
    customers: list[str | dict[str, Any]] | None
    variable_values: dict[str, Any] | None
    metadata: dict[str, Any] | None
    payload: dict[str, Any] | str | None

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
        check_nested: bool = True,
        wait_for_completion: bool = False,
        deferrable: bool | None = None,
        poll_interval: float = 10.0,
        timeout: float | None = None,
        failure_outcomes: Collection[str | CallOutcome] = DEFAULT_FAILURE_OUTCOMES,
        analysis_grace_period: float = DEFAULT_ANALYSIS_GRACE_PERIOD,
        xcom_detail: XComDetail = "compact",
        fail_on_batch_errors: bool = True,
        redial_on_retry: bool = False,
        dedupe_key: str | None = None,
        **kwargs: Any,
    ) -> None:
        given = dict(locals())
        super().__init__(**kwargs)
        for attribute in (*(name for name, _, _ in REQUEST_FIELDS), *_PLAIN_PARAMS):
            setattr(self, attribute, given[attribute])
        self.deferrable = default_deferrable() if deferrable is None else deferrable
        self.failure_outcomes = normalize_outcomes(failure_outcomes)
        self.xcom_detail = check_xcom_detail(xcom_detail)
        # The operator placed the call: a wait that times out or is killed ends it.
        self.end_call_on_timeout = True
        self.end_call_on_kill = True
        self._waiting_on: list[str] = []

    # -- templating (the rendering gate's hook) ------------------------------------------------

    def rendered_secrets(self) -> list[str]:
        """Every secret of the rendered parameters, for the masker: Airflow stores the Rendered tab
        right after rendering, before ``execute`` runs, and its key-name rules miss many of
        Vapi's (``gcpKey``, a ``twilioAuthToken`` inside a JSON-text ``payload`` ...)."""
        values = {name: getattr(self, name) for name, _, _ in REQUEST_FIELDS}
        try:
            found = find_secret_values(build_call_body(values))
        except VapiInvalidRequestError:  # refused again, with this message, by execute()
            found = []
        return [*found, *find_secret_values(values)]

    # -- building the request -------------------------------------------------------------------

    def build_body(self) -> dict[str, Any]:
        """The ``POST /call`` body from the rendered parameters, before validation."""
        return build_call_body({name: getattr(self, name) for name, _, _ in REQUEST_FIELDS})

    def build_request(self) -> CreateCallRequest:
        """Validate the body; bad input fails the task at once, without retries."""
        body = self.build_body()
        try:
            request = CreateCallRequest.from_payload(
                body, strict=self.strict_legacy, check_nested=self.check_nested
            )
        except ValidationError as exc:
            raise VapiInvalidRequestError.from_validation(
                exc, f"Task {self.task_id}: the call request"
            ) from None
        mask(request.secret_values())
        return request

    # -- execution ------------------------------------------------------------------------------

    def execute(self, context: Context) -> Any:
        request = self.build_request()
        calls, errors, left = self._place_once(context, request)
        call_ids = [c.id for c in calls]
        batch = request.customers is not None
        self._remember(context, call_ids, batch)
        if errors:
            self._report_refused(calls, errors)
        if not self.wait_for_completion:
            if batch:
                refused = _refused_for_xcom(errors, request.secret_values())
                return {"call_ids": call_ids, "errors": refused, "left": [c.id for c in left]}
            return call_ids[0]
        self._waiting_on = call_ids
        settled = self._settled_calls(call_ids)
        if settled is not None:
            return self._finish(settled, single=not batch)
        if self.deferrable:
            self._defer_wait(call_ids, self.poll_interval, self.timeout)
        return self._poll_until_settled(call_ids, not batch, self.poll_interval, self.timeout)

    def _place_once(
        self, context: Context, request: CreateCallRequest
    ) -> tuple[list[Call], list[CallBatchError], list[Call]]:
        """Call each person of the request once in this dag run's task: re-attach to the calls an
        earlier try, map index or position placed (:mod:`airflow_provider_vapi.placing.place`);
        also returns the calls of this run whose person the list no longer has (a batch)."""
        plan = place.plan_calls(
            self.hook, context, request, dedupe_key=self.dedupe_key, redial_on_retry=self.redial_on_retry
        )
        if self.wait_for_completion:
            self._refuse_cancelled(plan.reused())
        calls, errors = place.place_planned(self.hook, context, plan)
        return calls, errors, plan.left()

    @staticmethod
    def _refuse_cancelled(earlier: list[Call]) -> None:
        """An earlier try's call was cancelled (its timeout or kill ended it, or a person did): a
        retry that waited on it again would report a call nobody finished as a success."""
        cancelled = [c for c in earlier if c.is_ended and c.outcome is CallOutcome.CANCELED]
        if cancelled:
            reasons = ", ".join(f"{c.id} ({c.ended_reason})" for c in cancelled)
            raise AirflowFailException(
                f"An earlier try's call(s) {reasons} were cancelled, by that try's timeout or kill "
                "or by hand. Not dialling again and not reporting them as finished: trigger a new "
                "run to call these people again."
            )

    def _report_refused(self, calls: list[Call], errors: list[CallBatchError]) -> None:
        report = "; ".join(f"{_who(e.customer)}: {e.error}" for e in errors)
        self.log.error("Vapi refused %d of %d customers: %s", len(errors), len(errors) + len(calls), report)
        if self.fail_on_batch_errors:
            raise AirflowFailException(
                f"Vapi refused {len(errors)} customer(s) of the batch ({report}). The {len(calls)} "
                f"call(s) placed go on: {[c.id for c in calls]}. Set fail_on_batch_errors=False to carry on."
            )

    def _remember(self, context: Context, call_ids: list[str], batch: bool) -> None:
        """Publish the id(s) the moment they exist: XCom, the link, and the retry-proof store."""
        ti = context["ti"]
        ti.xcom_push(key=XCOM_CALL_ID, value=call_ids if batch else call_ids[0])
        if call_ids:
            self.push_link_url(ti, XCOM_CALL_URL, dashboard_url(call_ids[0]))
            self.log.info("Vapi call(s) placed: %s", ", ".join(dashboard_url(c) for c in call_ids))
        retry.remember(context, call_ids)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        """Resumed from the trigger: apply the outcome policy, or end the calls on timeout."""
        # A batch may come through `payload` too: ask the body, not the `customers` parameter.
        single = "customers" not in self.build_body()
        return self._complete(WaitEvent.from_event(event), single)

    def on_kill(self) -> None:
        """The task is being killed while waiting (or ran out of ``execution_timeout``): end the
        live call(s) it placed, on a hook of its own (the task's may be mid-request)."""
        self._killed(self._waiting_on)

    def _finish(self, calls: list[Call], single: bool) -> Any:
        """The outcome policy; an outcome failure is final, except one a retry may redial."""
        try:
            return super()._finish(calls, single)
        except VapiCallFailedError as exc:
            if self.redial_on_retry and CallOutcome(exc.outcome) in retry.REDIALABLE:
                raise VapiError(f"{exc} redial_on_retry: a retry of this task dials again.") from exc
            raise


__all__ = ["PlaceCallOperator"]
