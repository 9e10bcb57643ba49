"""A call's record and its wire form: the :class:`CallRecord`, Vapi's timestamp format and the
cache of serialized ``Call`` objects that polling reads."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

from . import content
from .constants import ORG_ID
from .recordings import PRESIGN_SLOT, recording_enabled, stable_fields

#: How many serialized calls :class:`WireCache` keeps (the oldest dropped first): polling reads a
#: few calls over and over; a listing of 100,000 seeded calls must not keep them all twice.
WIRE_CACHE_SIZE = 20_000


def iso(ms: int) -> str:
    """Vapi's timestamp format: ``2025-01-01T00:00:00.000Z``."""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


@dataclass(slots=True)
class CallRecord:
    """One call: what was asked, its fixed timeline lengths, and where it is now."""

    id: str
    seq: int
    created_ms: int
    updated_ms: int
    status: str
    echo: dict[str, Any]
    customer: dict[str, Any]
    seed: str
    assistant: dict[str, Any]
    variables: dict[str, Any]
    queue_ms: int
    ring_ms: int
    talk_ms: int
    analysis_ms: int
    control_url: str
    listen_url: str
    waiting_since_ms: int | None = None
    admitted: bool = False
    started_ms: int | None = None
    answered_ms: int | None = None
    ended_ms: int | None = None
    ended_reason: str | None = None
    ended_message: str | None = None
    messages: list[dict[str, Any]] = field(default_factory=list)
    costs: list[dict[str, Any]] = field(default_factory=list)
    cost_breakdown: dict[str, Any] | None = None
    analysis: dict[str, Any] | None = None
    pending_ms: int | None = None
    pending_kind: str | None = None
    #: Structured outputs (:mod:`.output_results`): the lag after ``ended``, what the effective
    #: assistant asks for (resolved at creation), what has been written and what is still to come.
    outputs_ms: int = 0
    output_plan: list[dict[str, Any]] = field(default_factory=list)
    output_results: dict[str, Any] | None = None
    outputs_updated_ms: int | None = None
    skipped_outputs: dict[str, Any] | None = None
    output_jobs: list[dict[str, Any]] = field(default_factory=list)
    #: ``outboundPhoneCall`` (``POST /call``, seeded calls) or ``inboundPhoneCall`` (injected).
    call_type: str = "outboundPhoneCall"

    @property
    def base_url(self) -> str:
        """The emulator's URL as the call's creator reached it (that of ``monitor.controlUrl``)."""
        return self.control_url.rsplit("/control/", 1)[0]

    @property
    def has_recording(self) -> bool:
        """Ended after a conversation, with recording enabled (:mod:`.recordings`)."""
        return self.status == "ended" and bool(self.messages) and recording_enabled(self.assistant)

    def to_wire(self) -> dict[str, Any]:
        """The ``Call`` object as Vapi answers it."""
        call: dict[str, Any] = {
            "id": self.id,
            "orgId": ORG_ID,
            "type": self.call_type,
            "createdAt": iso(self.created_ms),
            "updatedAt": iso(self.updated_ms),
            "status": self.status,
            "phoneCallTransport": "pstn",
        }
        call.update(self.echo)
        call["monitor"] = {"listenUrl": self.listen_url, "controlUrl": self.control_url}
        if self.started_ms is not None:
            call["startedAt"] = iso(self.started_ms)
        if self.ended_ms is not None:
            call["endedAt"] = iso(self.ended_ms)
            call["endedReason"] = self.ended_reason
            if self.ended_message:
                call["endedMessage"] = self.ended_message
            call["messages"] = self.messages
            call["artifact"] = self._artifact()
            call["costs"] = self.costs
            if self.cost_breakdown is not None:
                call["costBreakdown"] = self.cost_breakdown
                call["cost"] = self.cost_breakdown["total"]
            else:
                call["cost"] = 0
        if self.analysis is not None:
            call["analysis"] = self.analysis
        return call

    def _artifact(self) -> dict[str, Any]:
        artifact: dict[str, Any] = {
            "messages": self.messages,
            "transcript": content.transcript(self.messages),
            "variableValues": self.variables,
        }
        if self.output_results is not None:
            artifact["structuredOutputs"] = self.output_results
        if self.outputs_updated_ms is not None:
            artifact["structuredOutputsLastUpdatedAt"] = iso(self.outputs_updated_ms)
        if self.skipped_outputs:
            artifact["skippedStructuredOutputs"] = self.skipped_outputs
        if self.has_recording:
            artifact.update(stable_fields(self.base_url, self.id))
            artifact[PRESIGN_SLOT] = 0  # the presigned URLs, new in every response (.recordings.fill)
        return artifact

    def to_row(self) -> dict[str, Any]:
        """Everything needed to restore the record (persistence)."""
        return asdict(self)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> CallRecord:
        """The record a :meth:`to_row` dict describes (unknown keys ignored)."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in row.items() if k in known})


class WireCache:
    """Serialized ``Call`` objects, kept until their call changes (the hot path of polling); at
    most ``size`` of them, the oldest cached dropped first. A call with a recording keeps the
    presign slot (:data:`.recordings.PRESIGN_SLOT`): its presigned URLs are new in every answer."""

    def __init__(self, size: int = WIRE_CACHE_SIZE) -> None:
        self._data: dict[str, bytes] = {}
        self._size = size

    def get(self, rec: CallRecord) -> bytes:
        """``rec`` as compact JSON, from the cache when it has not changed since."""
        data = self._data.get(rec.id)
        if data is None:
            data = json.dumps(rec.to_wire(), separators=(",", ":")).encode()
            if len(self._data) >= self._size:
                del self._data[next(iter(self._data))]
            self._data[rec.id] = data
        return data

    def forget(self, call_id: str) -> None:
        """Drop the cached form of ``call_id`` (it changed or went away)."""
        self._data.pop(call_id, None)

    def clear(self) -> None:
        """Drop everything."""
        self._data.clear()
