"""The emulator's engine: one object holding all its state behind one lock, answering the Vapi
API and the admin API, and saving calls, assistants and structured outputs to the state file.

The pieces live elsewhere: the call state machine in :mod:`.lifecycle`, placing calls in
:mod:`.creation`, assistants / phone numbers / customers in :mod:`.directory`, saved structured
outputs and their runs in :mod:`.structured_outputs`, the call record and its wire form in
:mod:`.records`, the run-time settings in :mod:`.config`. Every public method reads the clock
through :meth:`Engine.now` and applies every due event before it answers.
"""

from __future__ import annotations

import copy
import threading
import time
from typing import Any

from .config import EngineConfig
from .creation import place_calls
from .directory import Directory, new_assistant
from .errors import ApiError, bad_request, not_found
from .lifecycle import CallBook
from .listing import ListQuery
from .outcomes import MANUALLY_CANCELED, SCHEDULED_CALL_DELETED
from .records import CallRecord, iso
from .store import SQLiteStore
from .structured_outputs import OutputLibrary, run_outputs
from .validation import create_call_errors, run_structured_output_errors, update_call_errors


class Engine:
    """All state of one emulator; every public method is thread-safe and advances time first."""

    def __init__(self, config: EngineConfig | None = None, state_file: str | None = None) -> None:
        config = config or EngineConfig()
        config.check()
        self._initial_config = copy.deepcopy(config)
        self._lock = threading.RLock()
        self._store = SQLiteStore(state_file) if state_file else None
        self._book = CallBook(config)
        self.directory = Directory()
        self.outputs = OutputLibrary()
        if self._store is not None:
            self._load()

    @property
    def config(self) -> EngineConfig:
        """The settings in force (replaced whole by :meth:`configure` and :meth:`reset`)."""
        return self._book.config

    @config.setter
    def config(self, value: EngineConfig) -> None:
        self._book.config = value

    @property
    def calls(self) -> dict[str, CallRecord]:
        """Every call by id."""
        return self._book.calls

    @staticmethod
    def now() -> int:
        """Wall-clock milliseconds."""
        return time.time_ns() // 1_000_000

    def advance(self, now: int | None = None) -> None:
        """Apply every event due by ``now`` (default: the clock), in time order."""
        with self._lock:
            self._book.advance(self.now() if now is None else now)
            self._flush()

    # -- persistence --------------------------------------------------------------------------

    def _flush(self) -> None:
        changed = self._book.take_dirty()
        if self._store is not None:
            self._store.save("calls", [(rec.id, rec.to_row()) for rec in changed])

    def _load(self) -> None:
        assert self._store is not None
        for row in self._store.load("assistants"):
            self.directory.assistants[row["id"]] = row
        self.outputs = OutputLibrary(self._store.load("structured_outputs"))
        records = sorted((CallRecord.from_row(r) for r in self._store.load("calls")), key=lambda r: r.seq)
        self._book.restore(records)
        self.advance()

    def close(self) -> None:
        """Release the state file."""
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None

    # -- admin --------------------------------------------------------------------------------

    def reset(self) -> None:
        """Back to the seeds and the start-up configuration (the state file is emptied too)."""
        with self._lock:
            self._book.clear()
            self.directory = Directory()
            self.outputs = OutputLibrary()
            self.config = copy.deepcopy(self._initial_config)
            if self._store is not None:
                self._store.clear()

    def _current_call(self, call_id: str) -> CallRecord:
        """The call ``call_id`` once time has advanced (hold the lock); a 404 when there is none."""
        self.advance()
        rec = self._book.calls.get(call_id)
        if rec is None:
            raise not_found("Call")
        return rec

    def configure(self, changes: dict[str, Any]) -> None:
        """Change run-time settings (camelCase keys of :meth:`EngineConfig.to_wire`)."""
        with self._lock:
            self.advance()
            self.config = self.config.changed(changes)
            self._book.admit_waiters(self.now())
            self._flush()

    def end_call(self, call_id: str) -> CallRecord:
        """What ``POST {controlUrl} {"type": "end-call"}`` does: end a live call now."""
        with self._lock:
            rec = self._current_call(call_id)
            if rec.status != "ended":
                self._book.end(rec, self.now(), MANUALLY_CANCELED, None)
            self._flush()
            return rec

    def backdate_call(self, call_id: str, seconds: float) -> CallRecord:
        """Move a call's timestamps ``seconds`` into the past, as if it had been placed then
        (tests of "the same task cleared an hour later" without waiting an hour)."""
        shift = int(seconds * 1000)
        with self._lock:
            rec = self._current_call(call_id)
            rec.created_ms -= shift
            rec.updated_ms -= shift
            rec.started_ms = None if rec.started_ms is None else rec.started_ms - shift
            rec.ended_ms = None if rec.ended_ms is None else rec.ended_ms - shift
            if rec.outputs_updated_ms is not None:
                rec.outputs_updated_ms -= shift
            self._book.forget_json(rec.id)
            self._flush()
            return rec

    def call_records(self) -> list[CallRecord]:
        """Every call (admin view), oldest first."""
        with self._lock:
            self.advance()
            return sorted(self._book.calls.values(), key=lambda r: r.seq)

    # -- Vapi API: calls ----------------------------------------------------------------------

    def call_json(self, rec: CallRecord) -> bytes:
        """The serialized ``Call``, cached until the call changes (the hot path of polling)."""
        return self._book.json(rec)

    def get_call(self, call_id: str) -> bytes:
        """``GET /call/{id}``."""
        with self._lock:
            return self.call_json(self._current_call(call_id))

    def list_calls(self, query: ListQuery) -> bytes:
        """``GET /call``: newest first by ``createdAt`` (ties: creation order), then ``limit``."""
        with self._lock:
            self.advance()
            picked: list[CallRecord] = []
            for rec in self._book.calls.values():
                ids = {"id": rec.id, **{k: rec.echo.get(k) for k in ("assistantId", "phoneNumberId")}}
                if all(ids[k] == v for k, v in query.equal.items()) and query.within(
                    rec.created_ms, rec.updated_ms
                ):
                    picked.append(rec)
            picked.sort(key=lambda r: (r.created_ms, r.seq), reverse=True)
            return b"[" + b",".join(self.call_json(r) for r in picked[: query.limit]) + b"]"

    def update_call(self, call_id: str, body: dict[str, Any]) -> bytes:
        """``PATCH /call/{id}``: only ``name`` can change."""
        errors = update_call_errors(body)
        if errors:
            raise bad_request(errors)
        with self._lock:
            rec = self._current_call(call_id)
            if "name" in body and body["name"] != rec.echo.get("name"):
                rec.echo["name"] = body["name"]
                self._book.touch(rec, self.now())
            self._flush()
            return self.call_json(rec)

    def delete_call(self, call_id: str) -> bytes:
        """``DELETE /call/{id}``: a scheduled call ends ``scheduled-call-deleted``; others go."""
        with self._lock:
            rec = self._current_call(call_id)
            if rec.status == "scheduled":
                self._book.end(rec, self.now(), SCHEDULED_CALL_DELETED, None)
                self._flush()
                return self.call_json(rec)
            data = self.call_json(rec)
            self._book.remove(rec, self.now())
            if self._store is not None:
                self._store.delete("calls", call_id)
            self._flush()
            return data

    def create_calls(self, body: Any, base_url: str) -> dict[str, Any]:
        """``POST /call``: one ``Call``, or a ``CallBatchResponse`` when ``customers`` is sent."""
        if not isinstance(body, dict):
            raise bad_request(["body must be an object"])
        errors = create_call_errors(body)
        if errors:
            raise bad_request(errors)
        with self._lock:
            self.advance()
            customers = self.directory.customers_for(body)
            assistant = self.directory.assistant_for(body)
            self.directory.check_phone_number(body)
            self.outputs.check_calls(assistant, customers)
            placed = place_calls(
                self._book, body, customers, assistant, self.now(), base_url, self.outputs.plan_for
            )
            self._flush()
            return placed

    # -- Vapi API: assistants and phone numbers -----------------------------------------------

    def create_assistant(self, body: Any) -> dict[str, Any]:
        """``POST /assistant``."""
        assistant = new_assistant(body, iso(self.now()))
        with self._lock:
            self.directory.assistants[assistant["id"]] = assistant
            if self._store is not None:
                self._store.save("assistants", [(assistant["id"], assistant)])
        return assistant

    def get_assistant(self, assistant_id: str) -> dict[str, Any]:
        """``GET /assistant/{id}``."""
        with self._lock:
            return self.directory.get_assistant(assistant_id)

    def list_assistants(self, query: ListQuery) -> list[dict[str, Any]]:
        """``GET /assistant``: newest first, filtered by time, then ``limit``."""
        with self._lock:
            return self.directory.list_assistants(query)

    def list_phone_numbers(self, query: ListQuery) -> list[dict[str, Any]]:
        """``GET /phone-number``: filtered by time, then ``limit``."""
        with self._lock:
            return self.directory.list_phone_numbers(query)

    # -- Vapi API: structured outputs -----------------------------------------------------------

    def _save_output(self, output: dict[str, Any]) -> dict[str, Any]:
        """Persist ``output``; a copy to answer (serialized once the lock is released)."""
        if self._store is not None:
            self._store.save("structured_outputs", [(output["id"], output)])
        return copy.deepcopy(output)

    def create_structured_output(self, body: Any) -> dict[str, Any]:
        """``POST /structured-output``."""
        with self._lock:
            return self._save_output(self.outputs.create(body, self.now()))

    def get_structured_output(self, output_id: str) -> dict[str, Any]:
        """``GET /structured-output/{id}``."""
        with self._lock:
            return copy.deepcopy(self.outputs.get(output_id))

    def list_structured_outputs(self, query: ListQuery) -> dict[str, Any]:
        """``GET /structured-output``: a ``StructuredOutputPaginatedResponse``."""
        with self._lock:
            return copy.deepcopy(self.outputs.page(query))

    def update_structured_output(self, output_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """``PATCH /structured-output/{id}``."""
        with self._lock:
            return self._save_output(self.outputs.update(output_id, body, self.now()))

    def delete_structured_output(self, output_id: str) -> dict[str, Any]:
        """``DELETE /structured-output/{id}`` (calls already placed keep what they resolved)."""
        with self._lock:
            output = self.outputs.delete(output_id)
            if self._store is not None:
                self._store.delete("structured_outputs", output_id)
            return output

    def run_structured_output(self, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /structured-output/run`` (see :func:`.structured_outputs.run_outputs`)."""
        errors = run_structured_output_errors(body)
        if errors:
            raise bad_request(errors)
        with self._lock:
            self.advance()
            answer = run_outputs(self._book, self.outputs, body, self.now())
            self._flush()
            return answer


__all__ = ["ApiError", "CallRecord", "Engine", "EngineConfig", "iso"]
