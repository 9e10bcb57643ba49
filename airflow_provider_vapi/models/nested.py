"""Check the inline objects of a ``POST /call`` body against Vapi's schemas before sending.

Vapi answers 400 ``property recordingEnabld should not exist`` to a typo anywhere inside an inline
``assistant``, ``assistantOverrides`` or ``customer``, and says nothing about the fix. This module
walks those objects (and ``customers``, ``squad``, ``squadOverrides``, ``schedulePlan``,
``workflowOverrides``) against the table generated from the spec
(:mod:`airflow_provider_vapi.spec_table`, which the emulator checks its bodies against too, with a
validator of its own) and reports every unknown property, wrong primitive type and unknown
``provider`` / ``type`` with a "did you mean" drawn from the schema, from the 2024 names
:mod:`airflow_provider_vapi.models.legacy` moved, and from a small table of synonyms
(``customer.phone`` -> ``number``).

Values are never echoed except a discriminator (``provider: 'opneai'``), and only when
:mod:`airflow_provider_vapi.secrets` does not call it a secret. Free-form objects (``metadata``,
``variableValues``, ``headers``, a structured output's JSON ``schema``) are not looked into, so
what the provider writes there is safe and JSON Schema keywords pass.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Final

from pydantic.alias_generators import to_camel

from airflow_provider_vapi.models.legacy import ASSISTANT_DROPS, ASSISTANT_MOVES
from airflow_provider_vapi.secrets import find_secret_values
from airflow_provider_vapi.spec_table import CALL_ROOTS, SCHEMAS, UNIONS

__all__ = ["MAX_DEPTH", "Location", "nested_problems"]

Location = tuple[str | int, ...]

#: Deeper than this (in keys and list indexes from the body) is not checked, and reported once.
MAX_DEPTH: Final = 64
#: Objects and lists checked at most (a body sharing sub-objects could otherwise explode).
_MAX_NODES: Final = 50_000
#: Every property of ``CreateCallDTO`` (the top of a ``POST /call`` body).
CALL_FIELDS: Final = frozenset(SCHEMAS["CreateCallDTO"])
_ASSISTANTS: Final = frozenset({"CreateAssistantDTO", "AssistantOverrides"})
#: Fields our pydantic models rename from snake_case before sending, per schema.
_MODEL_FIELDS: Final[Mapping[str, frozenset[str]]] = {
    "AssistantOverrides": frozenset({"variableValues", "metadata"}),
    "WorkflowOverrides": frozenset({"variableValues"}),
    "SchedulePlan": frozenset({"earliestAt", "latestAt"}),
    "CreateCustomerDTO": frozenset(SCHEMAS.get("CreateCustomerDTO", {})),
}
#: Root fields held by pydantic models (``_MODEL_FIELDS`` apply there); ``assistant`` and ``squad``
#: are plain dicts sent as given.
_MODEL_ROOTS: Final = frozenset(
    {"customer", "customers", "assistantOverrides", "squadOverrides", "schedulePlan", "workflowOverrides"}
)
_ASSISTANT_SYNONYMS: Final = {
    **dict.fromkeys(("firstmsg", "greeting", "welcomemessage", "openingmessage"), "firstMessage"),
    **dict.fromkeys(("prompt", "systemprompt", "instructions", "systemmessage"), "model.messages"),
    "llm": "model", "tts": "voice", "stt": "transcriber", "asr": "transcriber",
    **dict.fromkeys(("variables", "vars", "params", "placeholders"), "variableValues"),
    **dict.fromkeys(("webhook", "webhookurl", "callbackurl"), "server.url"),
    **dict.fromkeys(("record", "recording", "recordcall"), "artifactPlan.recordingEnabled"),
    **dict.fromkeys(("maxduration", "timelimit", "maxcallduration"), "maxDurationSeconds"),
}  # fmt: skip
#: Hand-picked names people reach for (lower-cased, without ``_``) -> the property Vapi has.
SYNONYMS: Final[Mapping[str, Mapping[str, str]]] = {
    "CreateCustomerDTO": {
        **dict.fromkeys(("phone", "phonenumber", "tel", "telephone", "mobile", "cell", "msisdn"), "number"),
        **dict.fromkeys(("sip", "sipaddress"), "sipUri"),
        **dict.fromkeys(("mail", "emailaddress"), "email"),
        **dict.fromkeys(("ext",), "extension"),
    },
    "CreateAssistantDTO": _ASSISTANT_SYNONYMS,
    "AssistantOverrides": _ASSISTANT_SYNONYMS,
}
_JSON_TYPES: Final = (str, int, float, Mapping, list, tuple)
_KIND_NAMES: Final = {
    "str": "a string", "num": "a number", "int": "an integer", "bool": "true or false",
    "obj": "an object", "date": "an ISO 8601 date-time string",
}  # fmt: skip


@cache
def _alternatives(expr: str) -> tuple[str, ...]:
    """``str|[Foo|num]|~model`` -> ``("str", "[Foo|num]", "~model")`` (``|`` inside ``[]`` kept)."""
    parts, depth, start = [], 0, 0
    for index, char in enumerate(expr):
        depth += {"[": 1, "]": -1}.get(char, 0)
        if char == "|" and depth == 0:
            parts.append(expr[start:index])
            start = index + 1
    parts.append(expr[start:])
    return tuple(parts)


@cache
def _properties(name: str) -> Mapping[str, str]:
    """The properties of a schema, or of every member of ``~union`` (when its tag is missing)."""
    if not name.startswith("~"):
        return SCHEMAS[name]
    merged: dict[str, str] = {}
    for member in UNIONS[name[1:]][1].values():
        for prop, kind in SCHEMAS[member].items():
            merged[prop] = "|".join(dict.fromkeys([*_alternatives(merged.get(prop, kind)), kind]))
    return merged


def _where(loc: Location) -> str:
    """``("assistant", "model", "tools", 0)`` -> ``assistant.model.tools[0]``."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else str(part)
    return text or "the body"


def _short(text: object, limit: int = 60) -> str:
    """``text`` for a message: at most ``limit`` characters, unprintable ones escaped."""
    shown = str(text)
    if not shown.isprintable():
        shown = shown.encode("unicode_escape").decode("ascii")
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."


def _type_name(value: object) -> str:
    return {"dict": "object", "list": "list", "NoneType": "null"}.get(
        type(value).__name__, type(value).__name__
    )


def _matches(value: str | float, kind: str) -> bool:
    """Whether a JSON scalar (``str``, ``bool``, ``int``, ``float``) is of primitive ``kind``."""
    if isinstance(value, bool):
        return kind == "bool"
    if kind == "num":
        return isinstance(value, int | float)
    if kind == "int":
        return isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    return kind in ("str", "date") and isinstance(value, str)


def _describe(alternatives: tuple[str, ...]) -> str:
    """What a type expects, in words."""
    words = []
    for alt in alternatives:
        if alt.startswith("["):
            words.append("a list")
        elif alt.startswith("~"):
            words.append(f"an object with '{UNIONS[alt[1:]][0]}'")
        else:
            words.append(_KIND_NAMES.get(alt, "an object"))
    return " or ".join(dict.fromkeys(words))


def _advice(value: Any, alternatives: tuple[str, ...]) -> str:
    """What to do about a value of the wrong type."""
    if isinstance(value, str) and {"num", "int"} & set(alternatives):
        try:
            float(value)
        except ValueError:
            pass
        else:
            return "write the number without quotes (a template renders text unless rendered natively)"
    if isinstance(value, str) and "bool" in alternatives and value.lower() in ("true", "false"):
        return "write true or false without quotes"
    if isinstance(value, int | float) and not isinstance(value, bool) and "str" in alternatives:
        return "quote it"
    return "fix the value"


def _legacy_names(rel: tuple[str, ...]) -> dict[str, str]:
    """2024 names at assistant-relative path ``rel`` -> what to say about them (their new home)."""
    out = {}
    for move in ASSISTANT_MOVES:
        *parent, name = move.old.split(".")
        if tuple(parent) == rel:
            out[name] = f"did you mean '{'.'.join(move.new.split('.')[len(rel) :])}'?"
    for drop in ASSISTANT_DROPS:
        *parent, name = drop.old.split(".")
        if tuple(parent) == rel:
            out[name] = f"did you mean the 2024 '{name}'? Vapi removed it: {drop.hint}"
    return out


def _suggestion(key: str, schema: str, rel: tuple[str, ...] | None) -> str | None:
    """``did you mean ...?`` for an unknown ``key`` of ``schema`` (``rel``: path in an assistant)."""
    props = _properties(schema)
    folded = key.replace("_", "").replace("-", "").lower()
    synonym = SYNONYMS.get(schema, {}).get(folded)
    if synonym and synonym.split(".")[0] in props:
        return f"did you mean '{synonym}'?"
    if key in CALL_FIELDS:
        return f"'{key}' is a field of the call itself: move it to the top of the POST /call body"
    by_fold = {p.lower(): p for p in props}
    if folded in by_fold:
        return f"did you mean '{by_fold[folded]}'? (names are camelCase and case-sensitive)"
    notes = {name: f"did you mean '{name}'?" for name in props}
    if rel is not None:
        notes.update(_legacy_names(rel))
    lowered = {name.lower(): name for name in notes}
    close = difflib.get_close_matches(folded, list(lowered), n=1, cutoff=0.75)
    return notes[lowered[close[0]]] if close else None


def _shown(prop: str, value: str) -> str:
    """A discriminator value for a message, unless it may be a secret."""
    return "(value hidden)" if find_secret_values({prop: value}) else repr(_short(value, 40))


@dataclass
class _Walk:
    """One check of one body: the problems so far and the guards against hostile input."""

    problems: list[tuple[Location, str]] = field(default_factory=list)
    nodes: int = 0
    path_ids: set[int] = field(default_factory=set)
    stopped: set[str] = field(default_factory=set)

    def report(self, loc: Location, message: str) -> None:
        self.problems.append((loc, message))

    def once(self, reason: str, loc: Location, message: str) -> None:
        if reason not in self.stopped:
            self.stopped.add(reason)
            self.report(loc, message)

    def enter(self, node: object, loc: Location) -> bool:
        """Whether to look inside ``node`` (not too deep, not a cycle, within budget)."""
        self.nodes += 1
        if len(loc) > MAX_DEPTH:
            where = _where(loc[:MAX_DEPTH])
            message = f"{where} is nested deeper than {MAX_DEPTH} levels: not checked further"
            self.once(
                "depth", loc, message + " (Vapi bodies are never this deep; is an object inside itself?)"
            )
        elif id(node) in self.path_ids:
            self.once("cycle", loc, f"{_where(loc)} contains itself (a cycle): a body must be a tree")
        elif self.nodes > _MAX_NODES:
            self.once("size", loc, f"the body has more than {_MAX_NODES} objects: the rest was not checked")
        else:
            return True
        return False

    # -- values --------------------------------------------------------------------------------
    def value(self, node: Any, expr: str, loc: Location, ctx: _Context) -> None:
        """Check ``node`` against the type expression ``expr``."""
        alternatives = _alternatives(expr)
        if not isinstance(node, _JSON_TYPES) or "any" in alternatives:
            return  # None, and what pydantic serialises itself (datetime, Decimal, UUID, models)
        if isinstance(node, Mapping):
            kind = next((a for a in alternatives if a in SCHEMAS or a[0] == "~" or a == "obj"), None)
            if kind is not None:
                self.object(node, kind, loc, ctx)
                return
        elif isinstance(node, list | tuple):
            kind = next((a for a in alternatives if a.startswith("[")), None)
            if kind is not None:
                self.items(node, kind[1:-1], loc, ctx)
                return
        elif any(_matches(node, kind) for kind in alternatives):
            return
        expected, fix = _describe(alternatives), _advice(node, alternatives)
        message = f"{_where(loc)} must be {expected}, got {_type_name(node)}: {fix}"
        self.report(loc, message + " (Vapi would answer 400)")

    def object(self, node: Mapping[Any, Any], kind: str, loc: Location, ctx: _Context) -> None:
        """An object where ``kind`` (a schema, a ``~union`` or free-form ``obj``) is expected."""
        if kind.startswith("~"):
            self.union(node, kind[1:], loc, ctx)
        elif kind in SCHEMAS:
            self.schema(node, kind, loc, ctx)

    def items(self, node: list[Any] | tuple[Any, ...], expr: str, loc: Location, ctx: _Context) -> None:
        """Every item of a list against the type expression ``expr``."""
        if self.enter(node, loc):
            self.path_ids.add(id(node))
            for index, item in enumerate(node):
                self.value(item, expr, (*loc, index), ctx.into_list())
            self.path_ids.discard(id(node))

    def union(self, node: Mapping[Any, Any], name: str, loc: Location, ctx: _Context) -> None:
        """Pick the member ``node`` is by its discriminator, then check it as that member."""
        prop, members = UNIONS[name]
        tag = node.get(prop)
        allowed = ", ".join(sorted(value for value in members if value != "*"))
        where = _where((*loc, prop))
        if isinstance(tag, str) and tag in members:
            self.schema(node, members[tag], loc, ctx)
        elif "*" in members and (tag is None or isinstance(tag, str)):
            self.schema(node, members["*"], loc, ctx)
        elif tag is None:  # e.g. a partial override: only names any member knows can be checked
            self.schema(node, f"~{name}", loc, ctx)
        elif not isinstance(tag, str):
            self.report((*loc, prop), f"{where} must be a string, got {_type_name(tag)}: one of {allowed}")
        else:
            close = difflib.get_close_matches(tag, allowed.split(", "), n=1, cutoff=0.6)
            hint = f"did you mean '{close[0]}'?" if close else f"use one of {allowed}"
            message = f"{where} {_shown(prop, tag)} is not one Vapi knows: {hint}"
            self.report((*loc, prop), message + " (Vapi would answer 400)")

    def schema(self, node: Mapping[Any, Any], name: str, loc: Location, ctx: _Context) -> None:
        """Check every key of ``node`` against the properties of schema ``name``."""
        if not self.enter(node, loc):
            return
        props = _properties(name)
        inside = ctx.into_object(name)
        self.path_ids.add(id(node))
        for key, value in node.items():
            if not isinstance(key, str):
                message = f"{_where(loc)} has a key that is not a string ({_type_name(key)})"
                self.report((*loc, str(key)), message + ": JSON property names are strings; rename it")
                continue
            prop = key if key in props else inside.model_name(key)
            if prop is None:
                self.unknown(key, name, loc, inside.rel)
            else:
                self.value(value, props[prop], (*loc, key), inside.child(key))
        self.path_ids.discard(id(node))

    def unknown(self, key: str, schema: str, loc: Location, rel: tuple[str, ...] | None) -> None:
        fix = _suggestion(key, schema, rel)
        if fix is None:
            names = sorted(_properties(schema))
            fix = (
                f"remove it (it has: {', '.join(names)})" if len(names) <= 12 else "remove it or fix its name"
            )
        name = _short(key)
        message = f"property '{name}' does not exist in {_where(loc)}: {fix}"
        self.report((*loc, key), message + f" (Vapi would answer 400 'property {name} should not exist')")


@dataclass(frozen=True)
class _Context:
    """Where an object sits: its path inside the nearest assistant, and snake_case leniency."""

    #: Path from the nearest assistant object (``("voice",)``), ``None`` when not inside one.
    rel: tuple[str, ...] | None = None
    #: camelCase fields whose snake_case spelling our pydantic models accept here.
    model_fields: frozenset[str] = frozenset()
    #: Whether this object is a field of a pydantic model (its children may be models too).
    model_backed: bool = False

    def into_object(self, schema: str) -> _Context:
        rel = () if schema in _ASSISTANTS else self.rel
        fields = _MODEL_FIELDS.get(schema, frozenset()) if self.model_backed else frozenset()
        return _Context(rel, fields, self.model_backed and schema == "CreateCustomerDTO")

    def model_name(self, key: str) -> str | None:
        """The wire name of a snake_case ``key`` our models rename here (``variable_values``)."""
        wire = to_camel(key)
        return wire if "_" in key and wire in self.model_fields else None

    def child(self, key: str) -> _Context:
        return _Context(None if self.rel is None else (*self.rel, key), frozenset(), self.model_backed)

    def into_list(self) -> _Context:
        return _Context(None, frozenset(), self.model_backed)


def _root_items(body: Mapping[Any, Any]) -> Iterator[tuple[str, Any]]:
    for name in CALL_ROOTS:
        value = body.get(name)
        if value is not None:
            yield name, value


def nested_problems(body: Mapping[str, Any]) -> list[tuple[Location, str]]:
    """``(location, message)`` for every problem inside the inline objects of a ``POST /call`` body.

    ``body`` is camelCase, already upgraded by :func:`airflow_provider_vapi.models.legacy.upgrade_call_body`.
    Reports unknown properties (with a "did you mean"), values of the wrong primitive type and
    unknown discriminators (``model.provider``, ``tools[].type``), recursively. Never raises: on
    input it cannot walk (cycles, absurd depth, odd objects) it returns what it found so far.
    """
    walk = _Walk()
    if not isinstance(body, Mapping):
        return []  # not a body at all: pydantic says so
    try:
        for name, value in _root_items(body):
            ctx = _Context(model_backed=name in _MODEL_ROOTS)
            walk.value(value, CALL_ROOTS[name], (name,), ctx)
    except Exception as exc:  # hostile Mapping or the like: report, never raise
        walk.report(("body",), f"the body could not be checked completely ({type(exc).__name__})")
    return walk.problems
