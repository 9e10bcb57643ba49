"""What a call learned, and what a task hands downstream: one home for both.

* **What to await** (:class:`AwaitedResults`): the results a call's configuration makes Vapi write
  after hang-up. The analysis (``analysisPlan``: summary and success evaluation are on by default,
  ``structuredData`` when enabled with a schema; deprecated but still written) and the structured
  outputs (``artifactPlan.structuredOutputIds`` by id, inline ``artifactPlan.structuredOutputs`` by
  name), read from the assistant with the call's ``assistantOverrides`` merged on top
  (:func:`awaited_for`). A squad or workflow call, or an assistant that cannot be read, leaves the
  configuration unknown: then the analysis is awaited when the call had a conversation and no
  output is (an output that arrives anyway is still handed on).
  :func:`airflow_provider_vapi.waiting.task.is_settled` applies it, with the grace period.
* **Structured outputs by name** (:func:`outputs_by_name`): ``artifact.structuredOutputs`` is keyed
  by id; downstream tasks want ``{name: result}``.
* **The XCom of a finished call** (:func:`call_result`): compact by default (ids, status, outcome,
  times, costs, analysis, structured outputs, dashboard URL; about 1.5 KiB), the transcript or the
  whole call only when asked for (``xcom_detail``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import TYPE_CHECKING, Any, Final, Literal

from airflow_provider_vapi.exceptions import VapiError
from airflow_provider_vapi.hook.links import dashboard_url
from airflow_provider_vapi.models import Call
from airflow_provider_vapi.secrets import redact_secrets
from airflow_provider_vapi.wire.paging import parse_ts_or_none

if TYPE_CHECKING:
    from airflow_provider_vapi.hook.core import VapiHook

__all__ = [
    "XCOM_DETAILS",
    "AwaitedResults",
    "XComDetail",
    "aawaited_for",
    "awaited_for",
    "call_result",
    "check_xcom_detail",
    "had_conversation",
    "outputs_by_name",
]

XComDetail = Literal["compact", "transcript", "full"]
XCOM_DETAILS: Final = ("compact", "transcript", "full")
#: An assistant's configuration is read once per connection and process for this long (a
#: triggerer waiting on a thousand calls of one assistant reads it once, not a thousand times).
ASSISTANT_CACHE_SECONDS: Final = 300.0
#: Vapi's default ``analysisPlan.minMessagesThreshold``: fewer messages, no analysis.
MIN_MESSAGES: Final = 2


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def had_conversation(call: Call, threshold: int = MIN_MESSAGES) -> bool:
    """Vapi analyses (and extracts from) a call with ``threshold`` messages or more, whatever its
    outcome; fewer means nothing will come."""
    messages = _dict(call.artifact).get("messages") or call.messages or []
    return len(messages) >= threshold


# -- what to await ------------------------------------------------------------------------------


@dataclass(frozen=True)
class AwaitedResults:
    """The results to wait for on one call (or on each call of a re-extraction).

    The default (``AwaitedResults()``) is what a call of unknown configuration awaits: the
    analysis if it had a conversation, no structured output.

    :param analysis: ``call.analysis`` is to come.
    :param output_ids: saved structured outputs to come, by id.
    :param output_names: inline (transient) structured outputs to come: Vapi keys them by an id
        made at run time, so they are known by name.
    :param since: only results written at or after this time count (``artifact.
        structuredOutputsLastUpdatedAt``). Set by a re-extraction.
    :param requested_at: when the results were asked for: the grace period counts from it (not
        from the end of a call that ended long ago). Set by a re-extraction.
    :param min_messages: the ``analysisPlan.minMessagesThreshold`` in force.
    """

    analysis: bool = True
    output_ids: tuple[str, ...] = ()
    output_names: tuple[str, ...] = ()
    since: datetime | None = None
    requested_at: datetime | None = None
    min_messages: int = MIN_MESSAGES

    def arrived(self, call: Call) -> bool:
        """Whether everything awaited is on ``call`` (an output skipped by its conditions counts)."""
        if not had_conversation(call):
            return True  # nothing is analysed or extracted when nobody spoke
        if self.analysis and had_conversation(call, self.min_messages) and not call.has_analysis:
            return False
        return self._outputs_arrived(call)

    def _outputs_arrived(self, call: Call) -> bool:
        """Every awaited output has a result (written since ``since``, when set) or was skipped by
        its conditions (a skip counts whenever it was written: Vapi stamps no time on it, and an
        output its conditions gate would otherwise be awaited, and asked for, forever)."""
        artifact = _dict(call.artifact)
        skipped = _dict(artifact.get("skippedStructuredOutputs"))
        results = _dict(artifact.get("structuredOutputs"))
        if self.since is not None:
            updated = parse_ts_or_none(artifact.get("structuredOutputsLastUpdatedAt"))
            results = results if updated is not None and updated >= self.since else {}
        entries = {**skipped, **results}
        names = {str(_dict(entry).get("name")) for entry in entries.values()}
        return all(i in entries for i in self.output_ids) and all(n in names for n in self.output_names)

    def to_json(self) -> dict[str, Any]:
        """For a trigger's kwargs."""
        return {
            "analysis": self.analysis,
            "output_ids": list(self.output_ids),
            "output_names": list(self.output_names),
            "since": None if self.since is None else self.since.isoformat(),
            "requested_at": None if self.requested_at is None else self.requested_at.isoformat(),
            "min_messages": self.min_messages,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AwaitedResults:
        return cls(
            analysis=bool(data.get("analysis", True)),
            output_ids=tuple(str(i) for i in data.get("output_ids") or ()),
            output_names=tuple(str(n) for n in data.get("output_names") or ()),
            since=parse_ts_or_none(data.get("since")),
            requested_at=parse_ts_or_none(data.get("requested_at")),
            min_messages=int(data.get("min_messages") or MIN_MESSAGES),
        )


def _merged_plan(base: dict[str, Any], override: Any, name: str) -> dict[str, Any]:
    """``base[name]`` with ``override[name]`` on top, as Vapi applies overrides (objects merge,
    lists and values replace)."""
    plan = dict(_dict(base.get(name)))
    for key, value in _dict(_dict(override).get(name)).items():
        merged = isinstance(value, dict) and isinstance(plan.get(key), dict) and key != "schema"
        plan[key] = {**plan[key], **value} if merged else value
    return plan


def awaited_from(assistant: Mapping[str, Any], overrides: Any = None) -> AwaitedResults:
    """What an assistant's configuration (``overrides`` on top) makes Vapi write after a call."""
    analysis_plan = _merged_plan(dict(assistant), overrides, "analysisPlan")
    artifact_plan = _merged_plan(dict(assistant), overrides, "artifactPlan")

    def enabled(plan: str, default: bool) -> bool:
        value = _dict(analysis_plan.get(plan)).get("enabled")
        return default if value is None else value is True

    threshold = analysis_plan.get("minMessagesThreshold")
    ids = [str(i) for i in artifact_plan.get("structuredOutputIds") or () if i]
    inline = [_dict(o).get("name") for o in artifact_plan.get("structuredOutputs") or ()]
    return AwaitedResults(
        analysis=enabled("summaryPlan", True) or enabled("successEvaluationPlan", True)
        or enabled("structuredDataPlan", False),
        output_ids=tuple(dict.fromkeys(ids)),
        output_names=tuple(dict.fromkeys(str(n) for n in inline if n)),
        min_messages=int(threshold) if isinstance(threshold, int | float) and threshold >= 0 else MIN_MESSAGES,
    )  # fmt: skip


# -- reading the configuration of a call --------------------------------------------------------

#: (Vapi base URL, assistant id) -> (``time.monotonic()`` when read, the assistant or None if
#: unreadable). Keyed by the URL, not the connection id: a connection edited to point at another
#: account must not reuse the first account's assistants.
_ASSISTANTS: dict[tuple[str, str], tuple[float, dict[str, Any] | None]] = {}


def _cached(base_url: str, assistant_id: str) -> tuple[bool, dict[str, Any] | None]:
    entry = _ASSISTANTS.get((base_url, assistant_id))
    if entry is None or time.monotonic() - entry[0] > ASSISTANT_CACHE_SECONDS:
        return False, None
    return True, entry[1]


def _remember(
    hook: VapiHook,
    base_url: str,
    assistant_id: str,
    assistant: dict[str, Any] | None,
    error: VapiError | None,
) -> dict[str, Any] | None:
    """Cache what reading the assistant gave: None when Vapi would not say (the wait then uses
    the rule for an unknown configuration, and says so)."""
    if error is not None:
        hook.log.warning(
            "Could not read assistant %s to learn which results its calls produce (%s); waiting "
            "for the analysis only, as for a squad.",
            assistant_id,
            error,
        )
    _ASSISTANTS[(base_url, assistant_id)] = (time.monotonic(), assistant)
    return assistant


def _awaited(call: Call, assistant: Mapping[str, Any] | None) -> AwaitedResults:
    if assistant is None:
        return AwaitedResults()
    return awaited_from(assistant, call.assistant_overrides)


def awaited_for(hook: VapiHook, call: Call) -> AwaitedResults:
    """The results ``call`` will get, from its inline assistant or the saved one (read through
    ``hook``, cached for :data:`ASSISTANT_CACHE_SECONDS`); unknown for a squad or a workflow."""
    if isinstance(call.assistant, dict) or not call.assistant_id:
        return _awaited(call, call.assistant)
    base_url = hook.base_url
    found, assistant = _cached(base_url, call.assistant_id)
    if not found:
        try:
            read = hook.get_assistant(call.assistant_id)
            assistant = _remember(hook, base_url, call.assistant_id, read, None)
        except VapiError as exc:
            assistant = _remember(hook, base_url, call.assistant_id, None, exc)
    return _awaited(call, assistant)


async def aawaited_for(hook: VapiHook, call: Call) -> AwaitedResults:
    """Async twin of :func:`awaited_for` (for the triggerer)."""
    if isinstance(call.assistant, dict) or not call.assistant_id:
        return _awaited(call, call.assistant)
    base_url = (await hook.asettings()).base_url
    found, assistant = _cached(base_url, call.assistant_id)
    if not found:
        try:
            read = await hook.aget_assistant(call.assistant_id)
            assistant = _remember(hook, base_url, call.assistant_id, read, None)
        except VapiError as exc:
            assistant = _remember(hook, base_url, call.assistant_id, None, exc)
    return _awaited(call, assistant)


# -- what downstream tasks get -------------------------------------------------------------------


def outputs_by_name(call: Call) -> dict[str, Any]:
    """``artifact.structuredOutputs`` as ``{name: result}`` (a second output with the same name
    is keyed ``"<name> (<id>)"``, so that nothing is lost)."""
    out: dict[str, Any] = {}
    for output_id, entry in _dict(_dict(call.artifact).get("structuredOutputs")).items():
        entry = _dict(entry)
        name = str(entry.get("name") or output_id)
        out[name if name not in out else f"{name} ({output_id})"] = entry.get("result")
    return out


#: Keys of the call copied as they are into the compact XCom, when Vapi sent them.
_COMPACT_KEYS: Final = (
    "id", "type", "status", "endedReason", "endedMessage", "createdAt", "startedAt", "endedAt",
    "cost", "costBreakdown", "analysis", "assistantId", "squadId", "workflowId", "phoneNumberId",
    "customerId", "campaignId", "name",
)  # fmt: skip
_CUSTOMER_KEYS: Final = ("number", "name", "email", "externalId", "extension", "sipUri")


@cache
def _compact_fields() -> frozenset[str]:
    """The ``Call`` fields (Python names) behind ``_COMPACT_KEYS`` and ``customer``."""
    wanted = {*_COMPACT_KEYS, "customer"}
    return frozenset(name for name, info in Call.model_fields.items() if (info.alias or name) in wanted)


def check_xcom_detail(detail: str) -> XComDetail:
    """``detail`` checked at DAG parse time: a typo must not silently store megabytes."""
    if detail not in XCOM_DETAILS:
        raise ValueError(
            f"xcom_detail={detail!r} is not one of {', '.join(map(repr, XCOM_DETAILS))}: 'compact' "
            "(default, about 1.5 KiB a call), 'transcript' (and the transcript), 'full' (the whole call)."
        )
    return detail  # type: ignore[return-value]


def call_result(call: Call, detail: XComDetail = "compact") -> dict[str, Any]:
    """The XCom of a finished call. ``compact``: what the call learned and what it cost, about
    1.5 KiB whatever its length; ``transcript``: that and ``transcript``; ``full``: the whole call as
    Vapi sent it (messages, artifact, recordings' URLs ...). Secrets Vapi echoes back are ``***``
    in every form (:func:`.secrets.redact_secrets`)."""
    check_xcom_detail(detail)
    if detail == "full":
        wire = data = call.to_xcom()  # secrets redacted
    else:
        # Only the fields kept are dumped and searched for secrets: a long call's messages and
        # artifact are most of its weight, and a busy triggerer builds thousands of these.
        dumped = call.model_dump(
            by_alias=True, exclude_unset=True, mode="json", include=set(_compact_fields())
        )
        wire = redact_secrets(dumped)
        data = {key: wire[key] for key in _COMPACT_KEYS if wire.get(key) is not None}
        customer = _dict(wire.get("customer"))
        if customer:
            data["customer"] = {k: customer[k] for k in _CUSTOMER_KEYS if k in customer}
        if call.metadata:
            data["metadata"] = redact_secrets(call.metadata)
        if detail == "transcript" and call.transcript is not None:
            data["transcript"] = call.transcript
    data["outcome"] = call.outcome.value
    data["durationSeconds"] = call.duration_seconds
    data["structuredOutputs"] = outputs_by_name(call)
    skipped = _dict(_dict(call.artifact).get("skippedStructuredOutputs"))
    if skipped:
        data["skippedStructuredOutputs"] = sorted(str(_dict(e).get("name") or i) for i, e in skipped.items())
    data["dashboardUrl"] = dashboard_url(call.id)
    return data
