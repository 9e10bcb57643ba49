"""One row per call: the documented shape of the warehouse table and of the Parquet export.

``ExportCallsOperator``'s JSON Lines files keep each call whole, as Vapi sent it (secrets
redacted); Parquet files and ``LoadCallsOperator``'s table hold this flat row instead, one column
per fact a data team filters or sums on, and the nested parts (analysis, structured outputs,
costs, metadata) as JSON. The row is a pure function of the call, so the same call exported twice
gives the same row, and loading it twice changes nothing.

What a database stores is :func:`storable`: text with NUL characters (U+0000, which PostgreSQL
cannot hold in ``TEXT`` or ``JSONB``) is loaded with them removed, and an unpaired surrogate (which
no database can encode as UTF-8) becomes U+FFFD, in text columns and inside the JSON ones (keys
too), on every database alike, so one export gives the same rows everywhere. The export files
keep the calls as Vapi sent them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal

from airflow_provider_vapi.models import Call
from airflow_provider_vapi.results import outputs_by_name
from airflow_provider_vapi.secrets import redact_secrets
from airflow_provider_vapi.wire.paging import iso

Kind = Literal["text", "time", "number", "json"]


@dataclass(frozen=True)
class Column:
    """A column of the row: its name, what kind of value it holds and what it means."""

    name: str
    kind: Kind
    doc: str


COLUMNS: Final[tuple[Column, ...]] = (
    Column("id", "text", "The call's id (primary key; rows are upserted by it)."),
    Column("type", "text", "inboundPhoneCall, outboundPhoneCall, webCall or vapi.websocketCall."),
    Column("status", "text", "scheduled, queued, ringing, in-progress, forwarding or ended."),
    Column("ended_reason", "text", "Vapi's endedReason (null while the call is live)."),
    Column("outcome", "text", "The provider's outcome class of endedReason (completed, no-answer ...)."),
    Column("assistant_id", "text", "The saved assistant, when one was used."),
    Column("squad_id", "text", "The saved squad, when one was used."),
    Column("workflow_id", "text", "The saved workflow, when one was used."),
    Column("phone_number_id", "text", "The Vapi phone number the call was placed from or came in on."),
    Column("campaign_id", "text", "The campaign that placed the call, if any."),
    Column("customer_number", "text", "The customer's phone number (E.164)."),
    Column("customer_name", "text", "The customer's name, when given."),
    Column("created_at", "time", "When the call was created (UTC)."),
    Column("updated_at", "time", "When Vapi last changed the call (UTC); a newer row wins an upsert."),
    Column("started_at", "time", "When the call started (UTC)."),
    Column("ended_at", "time", "When the call ended (UTC)."),
    Column("duration_seconds", "number", "ended_at - started_at, in seconds."),
    Column("cost", "number", "What the call cost, in USD."),
    Column("cost_breakdown", "json", "Vapi's costBreakdown (transport, stt, llm, tts, vapi ...)."),
    Column("summary", "text", "analysis.summary (deprecated analysis plan)."),
    Column("success_evaluation", "json", "analysis.successEvaluation (deprecated analysis plan)."),
    Column("structured_data", "json", "analysis.structuredData (deprecated analysis plan)."),
    Column("structured_outputs", "json", "artifact.structuredOutputs as {output name: result}."),
    Column("transcript", "text", "artifact.transcript."),
    Column("recording_url", "text", "The mono recording's stable URL (artifact.recording.mono.combinedUrl)."),
    Column("metadata", "json", "assistantOverrides.metadata (secrets redacted)."),
)
COLUMN_NAMES: Final[tuple[str, ...]] = tuple(c.name for c in COLUMNS)
JSON_COLUMNS: Final = frozenset(c.name for c in COLUMNS if c.kind == "json")
_SURROGATE: Final = re.compile("[\ud800-\udfff]")
#: JSON escapes a ``JSONB`` column refuses: ``\u0000`` and (possibly unpaired) surrogates.
_BAD_ESCAPE: Final = re.compile(r"\\u(?:0000|[dD][89a-fA-F])")


def _json(value: Any) -> str | None:
    """JSON text with sorted keys (the same value always gives the same text), or None."""
    if value is None or value == {}:
        return None
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def storable_text(text: str) -> str:
    """``text`` without NUL characters, each unpaired surrogate replaced by U+FFFD."""
    if text.isascii():
        return text.replace("\x00", "")
    return _SURROGATE.sub("\ufffd", text.replace("\x00", ""))


def _storable_value(value: Any) -> Any:
    if isinstance(value, str):
        return storable_text(value)
    if isinstance(value, dict):
        return {storable_text(str(k)): _storable_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_storable_value(v) for v in value]
    return value


def storable(value: Any, json_column: bool = False) -> Any:
    """``value`` as every database can store it (see the module's docstring); JSON text is
    rewritten (keys sorted, as :func:`call_row` writes it) only when it holds something to clean."""
    if not isinstance(value, str):
        return value
    if not json_column or not (_BAD_ESCAPE.search(value) or "\x00" in value or _SURROGATE.search(value)):
        return storable_text(value)
    try:
        parsed = json.loads(value, strict=False)
    except ValueError:
        return storable_text(value)
    return json.dumps(_storable_value(parsed), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value != "" else None


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _recording_url(artifact: Mapping[str, Any]) -> str | None:
    recording = artifact.get("recording")
    mono = recording.get("mono") if isinstance(recording, dict) else None
    combined = mono.get("combinedUrl") if isinstance(mono, dict) else None
    return _text(combined) or _text(artifact.get("recordingUrl"))


def call_row(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The row of one call, from its JSON as Vapi sent it (times as aware datetimes)."""
    call = Call.model_validate(redact_secrets(dict(raw)))
    artifact = call.artifact if isinstance(call.artifact, dict) else {}
    analysis = call.analysis if isinstance(call.analysis, dict) else {}
    customer = call.customer if isinstance(call.customer, dict) else {}
    row: dict[str, Any] = {
        "id": call.id,
        "type": _text(call.type),
        "status": _text(str(call.status) if call.status is not None else None),
        "ended_reason": _text(call.ended_reason),
        "outcome": call.outcome.value,
        "assistant_id": call.assistant_id,
        "squad_id": call.squad_id,
        "workflow_id": call.workflow_id,
        "phone_number_id": call.phone_number_id,
        "campaign_id": call.campaign_id,
        "customer_number": _text(customer.get("number")),
        "customer_name": _text(customer.get("name")),
        "created_at": call.created_at,
        "updated_at": call.updated_at,
        "started_at": call.started_at,
        "ended_at": call.ended_at,
        "duration_seconds": call.duration_seconds,
        "cost": _number(call.cost),
        "cost_breakdown": _json(call.cost_breakdown),
        "summary": call.summary,
        "success_evaluation": _json(analysis.get("successEvaluation")),
        "structured_data": _json(analysis.get("structuredData")),
        "structured_outputs": _json(outputs_by_name(call)),
        "transcript": call.transcript,
        "recording_url": _recording_url(artifact),
        "metadata": _json(call.metadata),
    }
    return row


def as_text_times(row: Mapping[str, Any]) -> dict[str, Any]:
    """``row`` with its times as Vapi's ISO text (for databases without a time type: SQLite)."""
    return {k: iso(v) if isinstance(v, datetime) else v for k, v in row.items()}
