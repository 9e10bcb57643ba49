"""Upgrade ``POST /call`` bodies written for Vapi's 2024 API to the current schema.

Vapi moved several assistant settings into nested plans and now answers 400
``property X should not exist`` when a body still uses the old place. A DAG written from the old
docs should keep working, so :func:`upgrade_call_body` rewrites each legacy field into its current
home (one log warning per field) and drops the few that have no home any more (one warning each,
or a refusal in strict mode). Every move below was checked against Vapi's OpenAPI spec: the new
place exists in ``CreateAssistantDTO`` / ``AssistantOverrides`` and the old one does not.

The functions work on plain camelCase dicts (the wire format) and never mutate their input.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

#: The header Vapi used to send a ``serverUrlSecret`` / ``server.secret`` in; the current
#: ``Server`` schema has no ``secret``, only free-form ``headers``.
SECRET_HEADER: Final = "X-Vapi-Secret"

_TRANSCRIPT_MESSAGE: Final = {
    "role": "user",
    "content": "Here is the transcript:\n\n{{transcript}}\n\n. "
    "Here is the ended reason of the call:\n\n{{endedReason}}\n\n",
}


def _system_prompt_messages(prompt: Any) -> list[dict[str, Any]]:
    """An old ``*Prompt`` string becomes the system message of the new ``messages`` list.

    The user message carrying ``{{transcript}}`` is Vapi's default one: supplying ``messages``
    replaces the defaults entirely, and without it the analysis model would never see the call.
    """
    return [{"role": "system", "content": prompt}, dict(_TRANSCRIPT_MESSAGE)]


@dataclass(frozen=True)
class Move:
    """A legacy field and its current home, both dotted paths inside an assistant object."""

    old: str
    new: str
    transform: Callable[[Any], Any] | None = None
    #: Values set beside the new one when absent (e.g. ``enabled: true``), so the old behaviour holds.
    also: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Drop:
    """A legacy field that has no current equivalent."""

    old: str
    hint: str


_STRUCTURED_ON: Final = {"analysisPlan.structuredDataPlan.enabled": True}

#: Moves inside an assistant, ``assistantOverrides``, ``squadOverrides`` or a squad member.
ASSISTANT_MOVES: Final[tuple[Move, ...]] = (
    Move("recordingEnabled", "artifactPlan.recordingEnabled"),
    Move("hipaaEnabled", "compliancePlan.hipaaEnabled"),
    Move("serverUrl", "server.url"),
    Move("serverUrlSecret", f"server.headers.{SECRET_HEADER}"),
    Move("server.secret", f"server.headers.{SECRET_HEADER}"),
    Move("responseDelaySeconds", "startSpeakingPlan.waitSeconds"),
    Move("numWordsToInterruptAssistant", "stopSpeakingPlan.numWords"),
    Move("voice.inputPreprocessingEnabled", "voice.chunkPlan.enabled"),
    Move("voice.inputMinCharacters", "voice.chunkPlan.minCharacters"),
    Move("voice.inputPunctuationBoundaries", "voice.chunkPlan.punctuationBoundaries"),
    Move("analysisPlan.summaryPrompt", "analysisPlan.summaryPlan.messages", _system_prompt_messages),
    Move(
        "analysisPlan.structuredDataPrompt",
        "analysisPlan.structuredDataPlan.messages",
        _system_prompt_messages,
        _STRUCTURED_ON,
    ),
    Move("analysisPlan.structuredDataSchema", "analysisPlan.structuredDataPlan.schema", None, _STRUCTURED_ON),
    Move(
        "analysisPlan.successEvaluationPrompt",
        "analysisPlan.successEvaluationPlan.messages",
        _system_prompt_messages,
    ),
    Move("analysisPlan.successEvaluationRubric", "analysisPlan.successEvaluationPlan.rubric"),
)

ASSISTANT_DROPS: Final[tuple[Drop, ...]] = (
    Drop(
        "silenceTimeoutSeconds",
        "to act on a silent customer, add a `customer.speech.timeout` entry to the assistant's `hooks`",
    ),
    Drop("llmRequestDelaySeconds", "use startSpeakingPlan to tune when the assistant answers"),
    Drop("backchannelingEnabled", "the current API has no backchanneling setting"),
    Drop("voice.fillerInjectionEnabled", "the current API has no filler-injection setting"),
    Drop("model.semanticCachingEnabled", "the current API has no semantic-caching setting"),
)

#: ``model.knowledgeBase`` now only takes ``custom-knowledge-base`` (a webhook); the 2024
#: ``canonical`` file-based form is gone (knowledge bases are attached through a ``query`` tool).
CURRENT_KNOWLEDGE_BASE_PROVIDERS: Final = frozenset({"custom-knowledge-base"})

#: The 2024 tool DTOs shared a base of ``async`` / ``function`` / ``server``; today each tool type
#: accepts only its own fields. Tool types of the spec that accept each of those fields:
TOOL_FIELD_OWNERS: Final[Mapping[str, frozenset[str]]] = {
    "async": frozenset({"code", "function"}),
    "function": frozenset({"code", "function", "handoff"}),
    "server": frozenset({"bash", "code", "computer", "function", "mcp", "textEditor"}),
}
#: Every tool type the spec knows; a tool of any other type is passed through untouched.
KNOWN_TOOL_TYPES: Final = frozenset(
    {
        "apiRequest", "bash", "code", "computer", "dtmf", "endCall", "function",
        "gohighlevel.calendar.availability.check", "gohighlevel.calendar.event.create",
        "gohighlevel.contact.create", "gohighlevel.contact.get", "google.calendar.availability.check",
        "google.calendar.event.create", "google.sheets.row.append", "handoff", "mcp", "query",
        "slack.message.send", "sms", "textEditor", "transferCall", "sipRequest", "voicemail",
    }
)  # fmt: skip

#: Moves inside a transient ``phoneNumber`` (``ImportTwilioPhoneNumberDTO`` now has ``server``).
PHONE_NUMBER_MOVES: Final[tuple[Move, ...]] = (
    Move("serverUrl", "server.url"),
    Move("serverUrlSecret", f"server.headers.{SECRET_HEADER}"),
    Move("server.secret", f"server.headers.{SECRET_HEADER}"),
)

_MISSING: Final = object()


@dataclass
class UpgradeResult:
    """The upgraded body and, in strict mode, what had to be refused (``(path, message)`` pairs)."""

    body: dict[str, Any]
    problems: list[tuple[str, str]] = field(default_factory=list)
    #: ``(old path, new path or None)`` for every rewrite, in order.
    changes: list[tuple[str, str | None]] = field(default_factory=list)
    #: One message per rewrite. The caller logs them once the body is accepted: a body refused
    #: for other reasons should show its errors, not a page of upgrade notes.
    warnings: list[str] = field(default_factory=list)


class _Upgrader:
    def __init__(self, strict: bool) -> None:
        self.strict = strict
        self.result = UpgradeResult(body={})

    # -- reporting ---------------------------------------------------------------------------
    def moved(self, old: str, new: str) -> None:
        self.result.changes.append((old, new))
        self.result.warnings.append(
            f"Vapi legacy field {old} moved to {new} (the current API refuses the old place with 400)."
        )

    def dropped(self, old: str, why: str) -> None:
        self.result.changes.append((old, None))
        if self.strict:
            self.result.problems.append((old, f"{old} no longer exists in Vapi's API: remove it ({why})"))
        else:
            self.result.warnings.append(
                f"Vapi legacy field {old} dropped: {why}. Validate with strict legacy checking to refuse it."
            )

    # -- moves ------------------------------------------------------------------------------
    def apply(self, obj: dict[str, Any], where: str, move: Move) -> None:
        old_parts = move.old.split(".")
        parent = _walk(obj, old_parts[:-1])
        if not isinstance(parent, dict) or old_parts[-1] not in parent:
            return
        value = parent.pop(old_parts[-1])
        old_path, new_path = f"{where}.{move.old}", f"{where}.{move.new}"
        new_parts = move.new.split(".")
        existing = _lookup(obj, new_parts)
        if existing is not _MISSING:
            self.dropped(old_path, f"{new_path} is already set; the value there was kept")
            return
        if not _assign(obj, new_parts, move.transform(value) if move.transform else value):
            self.dropped(old_path, f"{new_path} cannot be written (a parent is not an object)")
            return
        for extra_path, extra_value in move.also.items():
            extra_parts = extra_path.split(".")
            if _lookup(obj, extra_parts) is _MISSING:
                _assign(obj, extra_parts, extra_value)
        self.moved(old_path, new_path)

    def drop(self, obj: dict[str, Any], where: str, spec: Drop) -> None:
        parts = spec.old.split(".")
        parent = _walk(obj, parts[:-1])
        if isinstance(parent, dict) and parts[-1] in parent:
            del parent[parts[-1]]
            self.dropped(f"{where}.{spec.old}", spec.hint)

    # -- objects ----------------------------------------------------------------------------
    def assistant(self, obj: Any, where: str) -> None:
        if not isinstance(obj, dict):
            return
        for move in ASSISTANT_MOVES:
            self.apply(obj, where, move)
        for spec in ASSISTANT_DROPS:
            self.drop(obj, where, spec)
        model = obj.get("model")
        if not isinstance(model, dict):
            return
        kb = model.get("knowledgeBase")
        if isinstance(kb, dict) and kb.get("provider") not in CURRENT_KNOWLEDGE_BASE_PROVIDERS:
            del model["knowledgeBase"]
            self.dropped(
                f"{where}.model.knowledgeBase",
                f"provider {kb.get('provider')!r} is gone; create a knowledge base and attach it with a "
                "`query` tool, or use provider `custom-knowledge-base`",
            )
        tools = model.get("tools")
        if isinstance(tools, list):
            for index, tool in enumerate(tools):
                self.tool(tool, f"{where}.model.tools[{index}]")

    def tool(self, tool: Any, where: str) -> None:
        if not isinstance(tool, dict) or tool.get("type") not in KNOWN_TOOL_TYPES:
            return
        for name, owners in TOOL_FIELD_OWNERS.items():
            if name in tool and tool["type"] not in owners:
                del tool[name]
                self.dropped(f"{where}.{name}", f"a `{tool['type']}` tool no longer accepts `{name}`")
        if "server" in tool:
            self.apply(tool, where, Move("server.secret", f"server.headers.{SECRET_HEADER}"))

    def phone_number(self, obj: Any, where: str) -> None:
        if isinstance(obj, dict):
            for move in PHONE_NUMBER_MOVES:
                self.apply(obj, where, move)

    def customer(self, obj: Any, where: str) -> None:
        if isinstance(obj, dict):
            self.assistant(obj.get("assistantOverrides"), f"{where}.assistantOverrides")
            self.assistant(obj.get("squadOverrides"), f"{where}.squadOverrides")

    def squad(self, obj: Any, where: str) -> None:
        if not isinstance(obj, dict):
            return
        self.assistant(obj.get("membersOverrides"), f"{where}.membersOverrides")
        members = obj.get("members")
        if isinstance(members, list):
            for index, member in enumerate(members):
                if isinstance(member, dict):
                    self.assistant(member.get("assistant"), f"{where}.members[{index}].assistant")
                    self.assistant(
                        member.get("assistantOverrides"), f"{where}.members[{index}].assistantOverrides"
                    )

    def metadata(self, body: dict[str, Any]) -> None:
        """Carry the 2024 top-level ``metadata`` to the overrides that travel with the call."""
        if "metadata" not in body:
            return
        value = body.pop("metadata")
        if value is None:
            return
        uses_squad = any(body.get(k) is not None for k in ("squadId", "squad"))
        uses_workflow = any(body.get(k) is not None for k in ("workflowId", "workflow"))
        uses_assistant = any(body.get(k) is not None for k in ("assistantId", "assistant"))
        if not isinstance(value, dict):
            self.dropped("metadata", "top-level metadata must be an object; it is not sent")
            return
        if uses_workflow and not (uses_squad or uses_assistant):
            self.dropped(
                "metadata", "workflow calls have no metadata (workflowOverrides only has variableValues)"
            )
            return
        target = "squadOverrides" if uses_squad and not uses_assistant else "assistantOverrides"
        overrides = body.get(target)
        if overrides is None:
            overrides = body[target] = {}
        if not isinstance(overrides, dict):
            self.dropped("metadata", f"{target} is not an object")
            return
        current = overrides.get("metadata")
        merged = dict(value) if current is None else {**value, **current}
        clashes = sorted(k for k in value if isinstance(current, dict) and k in current)
        overrides["metadata"] = merged
        self.moved("metadata", f"{target}.metadata")
        if clashes:
            self.result.warnings.append(
                f"Vapi legacy metadata keys {', '.join(clashes)} are also in {target}.metadata; "
                f"the {target} values were kept."
            )


def upgrade_call_body(body: Mapping[str, Any], *, strict: bool = False) -> UpgradeResult:
    """Return a deep copy of a camelCase ``POST /call`` body with every legacy field upgraded.

    ``strict`` refuses (reports in ``problems``) what can only be dropped, instead of dropping it
    with a warning. Moves always happen: they lose nothing.
    """
    upgrader = _Upgrader(strict)
    data = copy.deepcopy(dict(body))
    upgrader.metadata(data)
    upgrader.assistant(data.get("assistant"), "assistant")
    upgrader.assistant(data.get("assistantOverrides"), "assistantOverrides")
    upgrader.assistant(data.get("squadOverrides"), "squadOverrides")
    upgrader.squad(data.get("squad"), "squad")
    upgrader.phone_number(data.get("phoneNumber"), "phoneNumber")
    upgrader.customer(data.get("customer"), "customer")
    customers = data.get("customers")
    if isinstance(customers, list):
        for index, customer in enumerate(customers):
            upgrader.customer(customer, f"customers[{index}]")
    upgrader.result.body = data
    return upgrader.result


# -- dict path helpers -----------------------------------------------------------------------
def _walk(obj: Any, parts: list[str]) -> Any:
    for part in parts:
        if not isinstance(obj, dict):
            return _MISSING
        obj = obj.get(part, _MISSING)
    return obj


def _lookup(obj: dict[str, Any], parts: list[str]) -> Any:
    """The value at ``parts`` or ``_MISSING``; header names compare case-insensitively."""
    parent = _walk(obj, parts[:-1])
    if not isinstance(parent, dict):
        return _MISSING
    if parts[-2:-1] == ["headers"]:
        wanted = parts[-1].lower()
        return next((v for k, v in parent.items() if k.lower() == wanted), _MISSING)
    value = parent.get(parts[-1], _MISSING)
    return _MISSING if value is None else value


def _assign(obj: dict[str, Any], parts: list[str], value: Any) -> bool:
    for part in parts[:-1]:
        child = obj.get(part)
        if child is None:
            child = obj[part] = {}
        if not isinstance(child, dict):
            return False
        obj = child
    obj[parts[-1]] = value
    return True
