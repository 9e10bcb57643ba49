"""``RunStructuredOutputOperator``: extract a structured output from calls that already happened.

The backfill a data team runs after adding or changing an output: every call of a data interval
(or the ids an upstream task hands over), at most 100 per ``POST /structured-output/run``, then a
wait (deferrable) until the results are on the calls, then ``{call id: result}`` downstream. Which
calls still need the run, how it is sent and what a retry remembers are
:mod:`airflow_provider_vapi.structured_outputs.extraction`'s; the wait is :mod:`airflow_provider_vapi.waiting.task`'s.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowFailException, BaseOperator

from airflow_provider_vapi.exceptions import VapiError, VapiRunUnresolvedError
from airflow_provider_vapi.hook.core import VapiHook
from airflow_provider_vapi.models import Call
from airflow_provider_vapi.rendering.gate import RenderingGate
from airflow_provider_vapi.structured_outputs import extraction
from airflow_provider_vapi.structured_outputs.api import StructuredOutputApi
from airflow_provider_vapi.structured_outputs.extraction import OutputRef
from airflow_provider_vapi.waiting.task import (
    CallWaitMixin,
    WaitEvent,
    default_deferrable,
    normalize_call_ids,
)
from airflow_provider_vapi.wire.paging import parse_param_ts

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

DEFAULT_RESULTS_TIMEOUT = 300.0


class RunStructuredOutputOperator(RenderingGate, CallWaitMixin, BaseOperator):
    """Run a structured output over past calls (``POST /structured-output/run``) and return the results.

    Give the output as ``structured_output_id`` (a saved one) or ``structured_output`` (an inline
    definition: ``name``, ``schema``, optional ``description``, ``model`` ...; its prompts' Liquid
    placeholders such as ``{{transcript}}`` reach Vapi untouched, Airflow expressions render), and
    the calls as
    ``call_ids`` or a time window (``created_after``/``created_before``, e.g. the data interval).
    Only ended calls can be extracted from; a call nobody spoke in is skipped by Vapi.

    Idempotent: a call whose result for this output was written since the dag run began (and since
    the output's definition last changed) is not asked for again, so a retry re-runs nothing that
    is there. On Airflow 3.3+ the task state store also remembers what each try asked for, and a
    retry waits for those results instead of asking again; on 2.11 a retry first waits up to the
    connection's ``create_settle_seconds`` for them. A clear starts the run again, and so extracts
    again (as a new dag run does), once the earlier results are older than the clock-skew margin
    (:data:`~airflow_provider_vapi.wire.skew.CLOCK_SKEW`). Vapi's own error on a run (500, 503: nothing
    ran) is sent again after a short settle; only a lost answer or a gateway's (timeout, 502, 504),
    after which the run may be under way, is waited for instead of sent again.

    :param structured_output_id: a saved structured output's id.
    :param structured_output: an inline structured output (Vapi's ``CreateStructuredOutputDTO``).
    :param call_ids: the calls: an id, a list of ids, a batch's ``{"call_ids": [...]}`` or the
        results of ``CallStatusSensor``/``PlaceCallOperator(wait_for_completion=True)``.
    :param created_after: instead of ``call_ids``: the calls created at or after this time
        (``"{{ data_interval_start }}"``, ISO text or a datetime).
    :param created_before: with ``created_after``: created before this time (default: now).
    :param assistant_id: with the window: only this assistant's calls.
    :param vapi_conn_id: the Airflow connection of the Vapi account.
    :param deferrable: wait for the results in the triggerer (default: ``[operators]
        default_deferrable``).
    :param poll_interval: seconds between checks while waiting.
    :param timeout: seconds the whole wait may last (default: no limit but ``results_timeout``).
    :param results_timeout: seconds after asking to wait for a call's result (default 300); then
        the call counts as missing.
    :param fail_on_missing: fail when some calls got no result in time (default ``True``: a retry
        asks for exactly those again); ``False`` returns them under ``missing``.

    Returns ``{"structuredOutputId", "name", "results": {call id: result}, "skipped": {call id:
    unmet condition}, "missing": [call ids]}``.
    """

    template_fields: Sequence[str] = (
        "structured_output_id", "structured_output", "call_ids", "created_after", "created_before",
        "assistant_id", "vapi_conn_id",
    )  # fmt: skip
    template_fields_renderers = {"structured_output": "json"}
    #: ``call_ids`` written as one ``{{ ... }}`` renders natively: a mapped upstream's ids stay a list.
    native_fields = frozenset({"call_ids"})
    keeps_vapi_placeholders = True
    ui_color = "#f5e6ff"

    def __init__(
        self,
        *,
        structured_output_id: str | None = None,
        structured_output: dict[str, Any] | None = None,
        call_ids: Any = None,
        created_after: datetime | str | None = None,
        created_before: datetime | str | None = None,
        assistant_id: str | None = None,
        vapi_conn_id: str = VapiHook.default_conn_name,
        deferrable: bool | None = None,
        poll_interval: float = 10.0,
        timeout: float | None = None,
        results_timeout: float = DEFAULT_RESULTS_TIMEOUT,
        fail_on_missing: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if (structured_output_id is None) == (structured_output is None):
            raise ValueError(
                f"Task {self.task_id}: give exactly one of structured_output_id (a saved output) "
                "or structured_output (an inline definition with name and schema)."
            )
        if (call_ids is None) == (created_after is None):
            raise ValueError(
                f"Task {self.task_id}: give exactly one of call_ids or created_after (with "
                "created_before: a window, e.g. created_after='{{ data_interval_start }}')."
            )
        self.structured_output_id = structured_output_id
        self.structured_output = structured_output
        self.call_ids = call_ids
        self.created_after = created_after
        self.created_before = created_before
        self.assistant_id = assistant_id
        self.vapi_conn_id = vapi_conn_id
        self.deferrable = default_deferrable() if deferrable is None else deferrable
        self.poll_interval = poll_interval
        self.timeout = timeout
        self.results_timeout = results_timeout
        self.fail_on_missing = fail_on_missing
        # The wait's settings (CallWaitMixin): the calls have ended, nothing to stop or fail on.
        self.analysis_grace_period = results_timeout
        self.failure_outcomes = frozenset()
        self.end_call_on_timeout = False
        self.end_call_on_kill = False
        self.xcom_detail = "compact"
        self._ref: OutputRef | None = None
        self._since: datetime | None = None

    # -- execution ------------------------------------------------------------------------------

    def execute(self, context: Context) -> Any:
        ref, since = self._prepare(context)
        calls = self._calls()
        todo = [c for c in calls if not extraction.is_fresh(c, ref, since)]
        self.log.info(
            "%d call(s); %d already hold a fresh %r, %d to extract.",
            len(calls), len(calls) - len(todo), ref.name, len(todo),
        )  # fmt: skip
        if not todo:
            return self._finish(calls, single=False)
        requested_at = self._submit(context, ref, since, todo)
        self.awaited_results = ref.awaited(since, requested_at)
        ids = [c.id for c in calls]
        settled = self._settled_calls(ids)
        if settled is not None:
            return self._finish(settled, single=False)
        if self.deferrable:
            self._defer_wait(ids, self.poll_interval, self.timeout)
        return self._poll_until_settled(ids, False, self.poll_interval, self.timeout)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        """Resumed from the trigger: read the results off the calls."""
        self._prepare(context)
        return self._complete(WaitEvent.from_event(event), single=False)

    def _prepare(self, context: Context) -> tuple[OutputRef, datetime]:
        """The output (a saved one is read: its name, and when its definition last changed) and
        the time since which a result counts as this run's."""
        if self.structured_output_id is not None:
            output_id = str(self.structured_output_id).strip()
            if output_id in ("", "None"):
                raise AirflowFailException(
                    f"Task {self.task_id}: structured_output_id rendered to {self.structured_output_id!r}: "
                    "give the id of a saved structured output (Vapi's dashboard, or POST /structured-output)."
                )
            ref = OutputRef.saved(StructuredOutputApi(self.hook).get(output_id))
        else:
            ref = OutputRef(name=_inline_name(self.structured_output, self.task_id),
                            definition=self.structured_output)  # fmt: skip
        self._ref, self._since = ref, extraction.freshness(ref, context)
        return ref, self._since

    def _calls(self) -> list[Call]:
        """The calls to extract from: the ids given (each must have ended), or the window's
        ended calls."""
        if self.call_ids is not None:
            ids = normalize_call_ids(self.call_ids)
            ids = [ids] if isinstance(ids, str) else list(dict.fromkeys(ids))
            calls = [self.hook.get_call(call_id) for call_id in ids]
            live = [f"{c.id} ({c.status})" for c in calls if not c.is_ended]
            if live:
                raise AirflowFailException(
                    f"Task {self.task_id}: call(s) {', '.join(live)} have not ended; structured "
                    "outputs run on ended calls. Wait for them first (CallStatusSensor)."
                )
            return calls
        after = parse_param_ts(self.created_after, "created_after")
        before = parse_param_ts(self.created_before, "created_before") or datetime.now(UTC)
        assistant = self.assistant_id or None  # a template of an empty param renders ""
        listed = self.hook.list_calls(None, createdAtGe=after, createdAtLt=before, assistantId=assistant)
        ended = [c for c in listed if c.is_ended]
        if len(ended) < len(listed):
            self.log.info(
                "Leaving out %d call(s) of the window that have not ended.", len(listed) - len(ended)
            )
        return ended

    def _submit(self, context: Context, ref: OutputRef, since: datetime, todo: list[Call]) -> datetime:
        """Ask for the calls no earlier try is still waiting on, in chunks; when it was asked."""
        earlier = extraction.in_flight(context, [c.id for c in todo], within=self.results_timeout)
        if earlier:
            self.log.info("%d call(s) were asked for by an earlier try: waiting for them.", len(earlier))
        rest = [c for c in todo if c.id not in earlier]
        rest = extraction.settle_earlier_runs(self.hook, context, ref, since, rest, self.poll_interval)
        now = datetime.now(UTC)
        for chunk in extraction.chunks([c.id for c in rest]):
            extraction.note_submitted(context, chunk)
            try:
                answer = StructuredOutputApi(self.hook).run(ref.body(chunk))
            except VapiRunUnresolvedError as exc:
                self.log.warning("%s Waiting for the results of these %d call(s).", exc, len(chunk))
                continue
            except VapiError:  # refused, or Vapi's own error every time: nothing of it ran
                extraction.forget_submitted(context, chunk)
                raise
            self.log.info("Asked Vapi to extract %r from %d call(s) (%s).", ref.name, len(chunk),
                          answer.get("workflowId") or answer.get("message") or "accepted")  # fmt: skip
        stamps = [datetime.fromtimestamp(t, UTC) for t in earlier.values()] + ([now] if rest else [])
        return min(stamps, default=now)

    def _finish(self, calls: list[Call], single: bool) -> Any:
        """``{call id: result}``, the skipped ones and those without a fresh result."""
        assert self._ref is not None and self._since is not None
        ref, since = self._ref, self._since
        results: dict[str, Any] = {}
        skipped: dict[str, Any] = {}
        missing: list[str] = []
        for call in calls:
            if not extraction.is_fresh(call, ref, since):
                missing.append(call.id)
                continue
            entry = ref.entry(call)
            if entry is not None and entry[0] == "result":
                results[call.id] = entry[1]
            else:  # skipped by its conditions, or nobody spoke in the call
                skipped[call.id] = None if entry is None else entry[1]
        self.log.info(
            "%r: %d result(s), %d skipped, %d missing.", ref.name, len(results), len(skipped), len(missing)
        )
        if missing and self.fail_on_missing:
            raise VapiError(
                f"No fresh {ref.name!r} on {len(missing)} call(s) within results_timeout="
                f"{self.results_timeout:g}s: {', '.join(missing[:20])}{' ...' if len(missing) > 20 else ''}. "
                "A retry of this task asks for exactly those again."
            )
        return {"structuredOutputId": ref.id, "name": ref.name, "results": results, "skipped": skipped,
                "missing": missing}  # fmt: skip


def _inline_name(definition: Any, task_id: str) -> str:
    """The inline output's name, checked before any request."""
    if not isinstance(definition, Mapping):
        raise AirflowFailException(
            f"Task {task_id}: structured_output must be an object (name, schema ...), got "
            f"{type(definition).__name__}."
        )
    name, schema = definition.get("name"), definition.get("schema")
    if not isinstance(name, str) or not 1 <= len(name) <= 40:
        raise AirflowFailException(
            f"Task {task_id}: structured_output.name must be text of 1 to 40 characters."
        )
    if not isinstance(schema, Mapping) or "type" not in schema:
        raise AirflowFailException(
            f"Task {task_id}: structured_output.schema must be a JSON schema object with a 'type' "
            "(e.g. {'type': 'boolean'})."
        )
    return name
