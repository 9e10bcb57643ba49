"""Structured outputs on a call: what each one extracts, what is skipped, and when it is written.

A call carries the outputs its effective assistant asks for (``artifactPlan.structuredOutputIds``
and inline ``artifactPlan.structuredOutputs``), resolved when it is created (:func:`runnable`,
keyed by the saved output's id or, for an inline one, a runtime uuid). When it ends, the ones
whose conditions fail are written at once to ``artifact.skippedStructuredOutputs``; the others
are a pending *job* written after the structured-output delay to ``artifact.structuredOutputs``
(``{key: {"name": ..., "result": ...}}``) with ``structuredOutputsLastUpdatedAt``. A
``POST /structured-output/run`` adds a job the same way. A call may have several jobs pending
(and an ``analysis`` event besides): each is applied at its own time by the
:class:`~.lifecycle.CallBook`, which owns the clock.

Everything is deterministic: a value derives from the call's seed and the output's name
(:func:`.content.structured_value`), so the same call and output always give the same result.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from . import content
from .records import CallRecord

#: The kind of the heap entries of pending structured-output jobs (beside the call's own event).
OUTPUTS_EVENT = "outputs"
#: Vapi extracts nothing from a call with fewer than 2 messages (no conversation).
DEFAULT_GATE: dict[str, Any] = {"type": "minMessages", "count": 2}
#: The model Vapi uses when an output names none (GPT-4.1), and what one extraction costs.
OUTPUT_MODEL = {"provider": "openai", "model": "gpt-4.1"}
_COST, _PROMPT_TOKENS, _COMPLETION_TOKENS = 0.0004, 600, 60
_DEFINITION_KEYS = ("name", "type", "regex", "schema", "conditions")
_REGEX_LITERAL = re.compile(r"^/(.*)/([a-z]*)$", re.DOTALL)
_REGEX_FLAGS = {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL}


def runnable(key: str, definition: dict[str, Any]) -> dict[str, Any]:
    """What a call keeps of a structured output to extract it later, under ``key``."""
    out = {k: copy.deepcopy(definition[k]) for k in _DEFINITION_KEYS if definition.get(k) is not None}
    out["key"] = key
    return out


# -- extracting -----------------------------------------------------------------------------------


def unmet_condition(rec: CallRecord, conditions: Any) -> dict[str, Any] | None:
    """The first condition the ended call ``rec`` fails (Vapi's own gate first), or None.

    Conditions are ANDed: ``minMessages`` (``count``), ``minCallDuration`` (``seconds`` between
    ``startedAt`` and ``endedAt``, as the wire shows them) and ``endedReason`` (``oneOf`` /
    ``notOneOf`` of ``values``).
    """
    if len(rec.messages) < DEFAULT_GATE["count"]:
        return dict(DEFAULT_GATE)
    for condition in conditions if isinstance(conditions, list) else []:
        kind = condition.get("type")
        if kind == "minMessages":
            met = len(rec.messages) >= condition.get("count", 0)
        elif kind == "minCallDuration":
            seconds = ((rec.ended_ms or 0) - (rec.started_ms or rec.ended_ms or 0)) / 1000
            met = seconds >= condition.get("seconds", 0)
        elif kind == "endedReason":
            listed = rec.ended_reason in (condition.get("values") or [])
            met = listed if condition.get("operator") == "oneOf" else not listed
        else:
            continue
        if not met:
            unmet: dict[str, Any] = copy.deepcopy(condition)
            return unmet
    return None


def extract(rec: CallRecord, output: dict[str, Any]) -> Any:
    """The ``result`` of ``output`` on the ended call ``rec``: a value satisfying its schema
    (``type: "ai"``), or what its ``regex`` finds in the transcript (``type: "regex"``)."""
    schema = output.get("schema") if isinstance(output.get("schema"), dict) else {}
    assert isinstance(schema, dict)
    if output.get("type") == "regex":
        return _regex_result(output.get("regex") or "", schema.get("type"), content.transcript(rec.messages))
    return content.structured_value(schema, rec.seed, f"structuredOutputs.{output['name']}", rec.variables)


def _regex_result(regex: str, kind: Any, text: str) -> Any:
    """What Vapi documents for regex outputs: a boolean (matched?), all matches (array), or the
    first match / first group (string, number); None when nothing matches. Python's ``re``
    stands in for RE2; ``/pattern/flags`` literals are understood (``g`` is implied)."""
    literal = _REGEX_LITERAL.match(regex)
    flags = 0
    if literal:
        regex = literal.group(1)
        for letter in literal.group(2):
            flags |= _REGEX_FLAGS.get(letter, 0)
    try:
        pattern = re.compile(regex, flags)
    except re.error:
        return None
    if kind == "boolean":
        return pattern.search(text) is not None
    found = [m.group(1) if pattern.groups else m.group(0) for m in pattern.finditer(text)]
    if kind == "array":
        return found
    if not found:
        return None
    if kind in ("number", "integer"):
        try:
            number = float(found[0])
        except ValueError:
            return None
        return int(number) if kind == "integer" or number.is_integer() else number
    return found[0]


def evaluate(
    rec: CallRecord, outputs: list[dict[str, Any]]
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """``(results, skipped)`` of ``outputs`` on the ended call ``rec``, each keyed by output key:
    ``{"name", "result"}`` (``StructuredOutputRunResult``) and ``{"name", "unmetCondition"}``
    (``SkippedStructuredOutput``)."""
    results: dict[str, dict[str, Any]] = {}
    skipped: dict[str, dict[str, Any]] = {}
    for output in outputs:
        unmet = unmet_condition(rec, output.get("conditions"))
        if unmet is None:
            results[output["key"]] = {"name": output["name"], "result": extract(rec, output)}
        else:
            skipped[output["key"]] = {"name": output["name"], "unmetCondition": unmet}
    return results, skipped


# -- writing --------------------------------------------------------------------------------------


def write(rec: CallRecord, results: dict[str, Any], skipped: dict[str, Any], at: int) -> None:
    """Put ``results`` and ``skipped`` on ``rec`` (an output is in one map or the other, never
    both); ``structuredOutputsLastUpdatedAt`` moves to ``at`` when ``structuredOutputs`` changes.
    The caller notes the change (``updatedAt``)."""
    current = dict(rec.output_results or {})
    passed = dict(rec.skipped_outputs or {})
    changed = bool(results)
    for key, entry in results.items():
        current[key] = entry
        passed.pop(key, None)
    for key, entry in skipped.items():
        passed[key] = entry
        changed = current.pop(key, None) is not None or changed
    if changed:
        rec.output_results = current
        rec.outputs_updated_ms = at
    rec.skipped_outputs = passed or None


def add_job(rec: CallRecord, at: int, results: dict[str, Any], skipped: dict[str, Any], billed: bool) -> None:
    """Plan writing ``results``/``skipped`` on ``rec`` at ``at``. An output still pending from an
    earlier job is dropped from it: the later request wins, whatever the delays."""
    keys = set(results) | set(skipped)
    kept = []
    for job in rec.output_jobs:
        job = {
            **job,
            "results": {k: v for k, v in job["results"].items() if k not in keys},
            "skipped": {k: v for k, v in job["skipped"].items() if k not in keys},
        }
        if job["results"] or job["skipped"]:
            kept.append(job)
    kept.append({"at": at, "results": results, "skipped": skipped, "billed": billed})
    rec.output_jobs = kept


def take_due(rec: CallRecord, at: int) -> list[dict[str, Any]]:
    """The jobs of ``rec`` due by ``at``, in time order (ties: the order they were planned),
    removed from it."""
    due = sorted((job for job in rec.output_jobs if job["at"] <= at), key=lambda job: job["at"])
    if due:
        rec.output_jobs = [job for job in rec.output_jobs if job["at"] > at]
    return due


def output_costs(results: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any], float]:
    """One ``AnalysisCost`` (``analysisType: "structuredOutput"``) with a breakdown per output,
    the ``analysisCostBreakdown`` entries and their total (nothing when there are no results)."""
    if not results:
        return [], {}, 0.0
    count = len(results)
    total = round(_COST * count, 4)
    item = {
        "type": "analysis",
        "analysisType": "structuredOutput",
        "model": dict(OUTPUT_MODEL),
        "promptTokens": _PROMPT_TOKENS * count,
        "completionTokens": _COMPLETION_TOKENS * count,
        "cost": total,
        "structuredOutputBreakdown": [
            {
                "structuredOutputId": key,
                "name": entry["name"],
                "cost": _COST,
                "promptTokens": _PROMPT_TOKENS,
                "completionTokens": _COMPLETION_TOKENS,
            }
            for key, entry in results.items()
        ],
    }
    breakdown = {
        "structuredOutput": total,
        "structuredOutputPromptTokens": _PROMPT_TOKENS * count,
        "structuredOutputCompletionTokens": _COMPLETION_TOKENS * count,
    }
    return [item], breakdown, total
