"""Saved structured outputs (``/structured-output``), how calls refer to them, and
``POST /structured-output/run``.

A structured output is a JSON schema (or a regex) Vapi extracts from a call once it has ended. It
is saved once and referenced by id (``artifactPlan.structuredOutputIds`` of an assistant or its
overrides), or given inline (``artifactPlan.structuredOutputs``). What happens on the calls is in
:mod:`.output_results`; this module keeps the saved ones, resolves a call's references (a 400
naming an unknown id, before any call is made), and plans runs on calls that already ended.

Not emulated: a saved output's ``assistantIds`` / ``workflowIds`` are stored and echoed but do not
attach it to those assistants, ``model`` and ``description`` do not change the (deterministic)
result, and ``compliancePlan`` is only echoed.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterable
from typing import Any

from . import output_results
from .constants import ORG_ID
from .directory import deep_merge
from .errors import bad_request, not_found
from .lifecycle import CallBook
from .listing import ListQuery, micros, page_meta
from .records import CallRecord, iso
from .validation import create_structured_output_errors, update_structured_output_errors

_SERVER_KEYS = ("id", "orgId", "createdAt", "updatedAt")
RUN_STARTED_MESSAGE = "Structured output run started: the results will be written to the calls' artifacts."


def _stamp_after(previous: str, now: int) -> str:
    """``now`` as a timestamp, moved past ``previous`` when it would not be later (so an
    ``updatedAt`` changes on every update, even within the same millisecond)."""
    before = micros(previous)
    return iso(now if before is None else max(now, before // 1000 + 1))


class OutputLibrary:
    """The saved structured outputs by id (created ones only: there are no seeds).

    Not thread-safe by itself: the engine holds its lock around every use.
    """

    def __init__(self, saved: Iterable[dict[str, Any]] = ()) -> None:
        self.items: dict[str, dict[str, Any]] = {item["id"]: item for item in saved}

    # -- /structured-output -----------------------------------------------------------------------

    def create(self, body: Any, now: int) -> dict[str, Any]:
        """``POST /structured-output``: the ``StructuredOutput`` made of ``body``; a 400 if invalid."""
        if not isinstance(body, dict):
            raise bad_request(["body must be an object"])
        errors = create_structured_output_errors(body)
        if errors:
            raise bad_request(errors)
        stamp = iso(now)
        output = {"id": str(uuid.uuid4()), "orgId": ORG_ID, "type": "ai"}
        output.update({k: copy.deepcopy(v) for k, v in body.items() if v is not None})
        output.update(createdAt=stamp, updatedAt=stamp)
        self.items[output["id"]] = output
        return output

    def get(self, output_id: str) -> dict[str, Any]:
        """``GET /structured-output/{id}``."""
        found = self.items.get(output_id)
        if found is None:
            raise not_found("Structured Output")
        return found

    def update(self, output_id: str, body: dict[str, Any], now: int) -> dict[str, Any]:
        """``PATCH /structured-output/{id}`` (``UpdateStructuredOutputDTO``): the given properties
        replace the saved ones (``schema`` whole); ``conditions: null`` clears the conditions."""
        errors = update_structured_output_errors(body)
        if errors:
            raise bad_request(errors)
        output = self.get(output_id)
        for key, value in body.items():
            if value is not None:
                output[key] = copy.deepcopy(value)
            elif key == "conditions":
                output.pop(key, None)
        output["updatedAt"] = _stamp_after(output["updatedAt"], now)
        return output

    def delete(self, output_id: str) -> dict[str, Any]:
        """``DELETE /structured-output/{id}``: the deleted ``StructuredOutput``."""
        output = self.get(output_id)
        del self.items[output_id]
        return output

    def page(self, query: ListQuery) -> dict[str, Any]:
        """``GET /structured-output``: a ``StructuredOutputPaginatedResponse``, by ``createdAt``
        (``sortOrder``, newest first by default; ties in creation order), filtered by ``id``,
        ``name`` and time, then page ``page`` of ``limit`` items."""
        found = [
            (index, item)
            for index, item in enumerate(self.items.values())
            if query.within_iso(item) and all(item.get(k) == v for k, v in query.equal.items())
        ]
        found.sort(key=lambda pair: (pair[1]["createdAt"], pair[0]), reverse=query.sort_order == "DESC")
        start = (query.page - 1) * query.limit
        page = [item for _, item in found[start : start + query.limit]]
        return {"results": page, "metadata": page_meta(len(found), query.page, query.limit, query.sort_order)}

    # -- what calls and runs refer to --------------------------------------------------------------

    def _saved_ids(self, assistant: dict[str, Any]) -> list[str]:
        """The saved outputs ``assistant`` asks for (``artifactPlan.structuredOutputIds``, each
        once); a 400 naming the first unknown one."""
        plan = assistant.get("artifactPlan")
        ids = plan.get("structuredOutputIds") if isinstance(plan, dict) else None
        wanted = list(dict.fromkeys(ids if isinstance(ids, list) else []))
        for output_id in wanted:
            if output_id not in self.items:
                raise bad_request(
                    f"Couldn't Get Structured Output. `structuredOutputId` {output_id} Does Not Exist."
                )
        return wanted

    def plan_for(self, assistant: dict[str, Any]) -> list[dict[str, Any]]:
        """What a call running the effective ``assistant`` will extract: each saved output under
        its id, each inline one (``artifactPlan.structuredOutputs``) under a fresh runtime uuid."""
        outputs = [output_results.runnable(i, self.items[i]) for i in self._saved_ids(assistant)]
        plan = assistant.get("artifactPlan")
        inline = plan.get("structuredOutputs") if isinstance(plan, dict) else None
        for item in inline if isinstance(inline, list) else []:
            if isinstance(item, dict):
                outputs.append(output_results.runnable(str(uuid.uuid4()), item))
        return outputs

    def check_calls(
        self, assistant: dict[str, Any], customers: list[tuple[dict[str, Any], str | None]]
    ) -> None:
        """A 400 when a call of a create would refer to an unknown saved output (``assistant``:
        overrides of the body applied; each customer's own overrides are applied here)."""
        for customer, _ in customers:
            overrides = customer.get("assistantOverrides")
            self._saved_ids(deep_merge(assistant, overrides) if isinstance(overrides, dict) else assistant)

    def for_run(self, body: dict[str, Any]) -> dict[str, Any]:
        """The output a ``StructuredOutputRunDTO`` runs: the saved one under its id, or the inline
        one under a runtime uuid (one per run)."""
        given = [k for k in ("structuredOutputId", "structuredOutput") if body.get(k) is not None]
        if len(given) != 1:
            raise bad_request(
                "Couldn't Run Structured Output. Need Either `structuredOutputId` Or `structuredOutput`"
                + (", Not Both." if given else ".")
            )
        if given[0] == "structuredOutput":
            return output_results.runnable(str(uuid.uuid4()), body["structuredOutput"])
        output_id = body["structuredOutputId"]
        if output_id not in self.items:
            raise bad_request(
                f"Couldn't Get Structured Output. `structuredOutputId` {output_id} Does Not Exist."
            )
        return output_results.runnable(output_id, self.items[output_id])


def _ended_calls(book: CallBook, call_ids: list[str]) -> list[CallRecord]:
    """The calls ``call_ids`` names (each once); a 400 naming those that do not exist, else those
    that have not ended."""
    wanted = list(dict.fromkeys(call_ids))
    missing = [cid for cid in wanted if cid not in book.calls]
    if missing:
        raise bad_request(f"Couldn't Run Structured Output. `callIds` {', '.join(missing)} Do Not Exist.")
    live = [cid for cid in wanted if book.calls[cid].status != "ended"]
    if live:
        raise bad_request(f"Couldn't Run Structured Output. Calls {', '.join(live)} Have Not Ended Yet.")
    return [book.calls[cid] for cid in wanted]


def run_outputs(book: CallBook, library: OutputLibrary, body: dict[str, Any], now: int) -> dict[str, Any]:
    """``POST /structured-output/run`` on a checked ``StructuredOutputRunDTO``.

    Preview (exactly one call): the result at once, ``{key: {name, result}}``, or
    ``{"skipped": {key: {name, unmetCondition}}}`` for a call without a conversation; nothing is
    written. Otherwise a ``StructuredOutputRerunResponse``; each call gets the result (or the
    skip) after the structured-output delay in force (at least 1 ms, so never before the answer),
    replacing any earlier one of the same output, written or still pending.
    """
    preview = body.get("previewEnabled") is True
    if preview and len(body["callIds"]) != 1:
        raise bad_request(
            "Couldn't Run Structured Output. `callIds` Must Contain Exactly 1 Call Id When "
            "`previewEnabled` Is True."
        )
    output = library.for_run(body)
    records = _ended_calls(book, body["callIds"])
    if preview:
        results, skipped = output_results.evaluate(records[0], [output])
        return dict(results) if results else {"skipped": skipped}
    delay_s = book.config.structured_output_delay_s
    at = now + book.ms(delay_s)
    for rec in records:
        results, skipped = output_results.evaluate(rec, [output])
        book.queue_outputs(rec, at, results, skipped, billed=False)
    return {"message": RUN_STARTED_MESSAGE, "workflowId": str(uuid.uuid4())}
