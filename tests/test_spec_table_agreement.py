"""The client's checks and the emulator's agree on every body of a corpus (issue #26).

Both read one generated table (``airflow_provider_vapi/spec_table.py``), each with its own
validator: the client's ``CreateCallRequest.from_payload`` (``models/nested.py`` inside) and the
emulator's ``create_call_errors`` (``emulator/validation.py`` and ``schema_check.py``), called in
process, plus the same bodies over HTTP to a running emulator. The corpus, each body with the
verdict it must get from both sides:

* the seed page's example body (2024) as the client upgrades it, with each speaker in turn, and
  with its ``{}`` placeholders where the spec wants a string (refused);
* the ``POST /call`` body of every ``PlaceCallOperator`` of the example DAGs, built by the operator
  from the keyword arguments the DAG file gives it (read from its source, so that moving product
  modules cannot hide a DAG; values computed at run time get a sample of their kind);
* JSON Schema keywords (``additionalProperties``, ``anyOf``, ``oneOf``, ``minItems``, ``$ref``,
  ``enum``, ``minimum``) inside a structured output's ``schema``, an analysis plan's schema and a
  strict function tool's ``parameters``, and a GCP key file: free-form objects, accepted;
* what both must refuse: an unknown property in a typed nested object, an unknown discriminator,
  a wrong JSON type, a free-form object that is not an object.

On the code before the single table (f7a9f60: two tables from two generators), 14 of the 44
bodies got different verdicts, all "the client accepts, the emulator refuses": 12 valid bodies the
emulator refused (``additionalProperties`` in a structured output's schema, an analysis plan's schema
and strict function parameters: ``...structuredOutputs.0.schema.property additionalProperties should
not exist``; ``$defs`` beside a ``$ref``; a ``$ref`` or ``anyOf`` property without ``type``; top-level
``minimum``, ``minItems``/``uniqueItems`` and ``const``; an ``enum`` of numbers: ``each value in enum
must be a string``; a GCP key file: ``...gcpKey.property project_id should not exist``), and 2
malformed ones the client let through (a structured output's ``schema`` or a function's
``parameters`` that is not an object: its table typed both ``any``). Over HTTP the same, and the
emulator's ``POST /structured-output`` refused 3 of the 7 keyword schemas. All agree now.

:data:`DELIBERATE` lists the differences kept on purpose, each with its reason; the test pins them
so that they stay known.
"""

from __future__ import annotations

import ast
import copy
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from airflow_provider_vapi.emulator.validation import (
    create_call_errors,
    create_structured_output_errors,
)
from airflow_provider_vapi.models import CreateCallRequest
from airflow_provider_vapi.models.legacy import upgrade_call_body
from tests.shared_data import REPO_ROOT, seed_payload, strings_where_the_spec_wants_them

NUMBER = "+14155550123"
PHONE_NUMBER_ID = "b0b0f0e0-0000-4000-8000-000000000001"
ASSISTANT_ID = "a55157a0-0000-4000-8000-000000000001"
OPENAI = {"provider": "openai", "model": "gpt-4o"}
EXAMPLES = REPO_ROOT / "example_dags"


@dataclass(frozen=True)
class Case:
    name: str
    body: dict[str, Any]
    accepted: bool


def call(assistant: Mapping[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
    """A ``POST /call`` body: an inline assistant (``model`` filled in), a line and a customer."""
    body: dict[str, Any] = {"phoneNumberId": PHONE_NUMBER_ID, "customer": {"number": NUMBER}}
    if assistant is not None:
        body["assistant"] = {"model": dict(OPENAI), **assistant}
    return {**body, **fields}


def with_output(schema: Any, **extra: Any) -> dict[str, Any]:
    """A call whose inline assistant extracts one structured output of JSON Schema ``schema``."""
    output = {"name": "answers", "schema": schema, **extra}
    return call({"artifactPlan": {"structuredOutputs": [output]}})


def with_tool(tool: Mapping[str, Any]) -> dict[str, Any]:
    return call({"model": {**OPENAI, "tools": [dict(tool)]}})


def strict_function(parameters: Any, **function: Any) -> dict[str, Any]:
    """A call whose assistant has one strict function tool with these ``parameters``."""
    spec = {"name": "book", "description": "Book a slot", "strict": True, "parameters": parameters}
    return with_tool({"type": "function", "function": {**spec, **function}})


# -- JSON Schema keywords: free-form objects, accepted by both ---------------------------------------
#: A JSON Schema per keyword (each a valid structured-output schema and strict-mode parameters).
KEYWORD_SCHEMAS: dict[str, dict[str, Any]] = {
    "additionalProperties": {
        "type": "object",
        "properties": {"slot": {"type": "string"}},
        "required": ["slot"],
        "additionalProperties": False,
    },
    "anyOf": {
        "type": "object",
        "properties": {"callback": {"anyOf": [{"type": "string", "format": "date-time"}, {"type": "null"}]}},
        "required": ["callback"],
        "additionalProperties": False,
    },
    "oneOf": {
        "type": "object",
        "properties": {
            "contact": {
                "type": "object",
                "properties": {"email": {"type": "string"}, "phone": {"type": "string"}},
                "oneOf": [{"required": ["email"]}, {"required": ["phone"]}],
            }
        },
    },
    "minItems": {
        "type": "object",
        "properties": {
            "topics": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 3}
        },
    },
    "$ref": {
        "type": "object",
        "$defs": {"slot": {"type": "string", "format": "date-time"}},
        "properties": {"first": {"$ref": "#/$defs/slot"}, "second": {"$ref": "#/$defs/slot"}},
        "required": ["first", "second"],
        "additionalProperties": False,
    },
    "enum": {
        "type": "object",
        "properties": {
            "score": {"type": "integer", "enum": [1, 2, 3]},
            "topic": {"type": "string", "enum": ["price", "quality"]},
        },
    },
    "minimum": {"type": "object", "properties": {"score": {"type": "integer", "minimum": 1, "maximum": 5}}},
}
#: Keywords at the top of a structured output's schema (not only inside ``properties``).
TOP_LEVEL_SCHEMAS: dict[str, dict[str, Any]] = {
    "minimum": {"type": "integer", "minimum": 1, "maximum": 5},
    "minItems": {"type": "array", "items": {"type": "string"}, "minItems": 1, "uniqueItems": True},
    "enum of numbers": {"type": "number", "enum": [0.5, 1, 2]},
    "const": {"type": "string", "const": "yes"},
}
GCP_KEY = {
    "type": "service_account",
    "project_id": "acme",
    "private_key_id": "k1",
    "private_key": "-----BEGIN PRIVATE KEY-----\nMII\n-----END PRIVATE KEY-----\n",
    "client_email": "vapi@acme.iam.gserviceaccount.com",
    "client_id": "1",
    "auth_uri": "https://accounts.google.com/o/oauth2/auth",
    "token_uri": "https://oauth2.googleapis.com/token",
    "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
    "client_x509_cert_url": "https://www.googleapis.com/robot/v1/metadata/x509/vapi",
    "universe_domain": "googleapis.com",
}


def keyword_cases() -> Iterator[Case]:
    for keyword, schema in KEYWORD_SCHEMAS.items():
        yield Case(f"structured output schema with {keyword}", with_output(schema), True)
        yield Case(f"strict function parameters with {keyword}", strict_function(schema), True)
    for keyword, schema in TOP_LEVEL_SCHEMAS.items():
        yield Case(f"structured output schema with top-level {keyword}", with_output(schema), True)
    plan = {"structuredDataPlan": {"enabled": True, "schema": KEYWORD_SCHEMAS["additionalProperties"]}}
    yield Case("analysis plan schema with additionalProperties", call({"analysisPlan": plan}), True)
    credential = {"provider": "gcp", "gcpKey": GCP_KEY}
    yield Case("a GCP key file (snake_case keys)", call({"credentials": [credential]}), True)


# -- what both must refuse ---------------------------------------------------------------------------
def refused_cases() -> Iterator[Case]:
    yield Case("unknown property in the model", call({"model": {**OPENAI, "temprature": 1}}), False)
    yield Case("unknown property in a plan", call({"artifactPlan": {"recordingEnabld": True}}), False)
    yield Case(
        "unknown property in a customer", {**call({}), "customer": {"number": NUMBER, "tel": "1"}}, False
    )
    yield Case(
        "unknown property in a tool's function",
        with_tool({"type": "function", "function": {"name": "f", "descripton": "x"}}),
        False,
    )
    yield Case("unknown property of a structured output", with_output({"type": "string"}, shema=1), False)
    yield Case(
        "unknown property in a squad member's overrides",
        {
            **call(),
            "squad": {
                "members": [{"assistantId": ASSISTANT_ID, "assistantOverrides": {"firstMesage": "hi"}}]
            },
        },
        False,
    )
    yield Case("unknown model provider", call({"model": {"provider": "opneai", "model": "gpt-4o"}}), False)
    yield Case("unknown tool type", with_tool({"type": "transferCal"}), False)
    yield Case("unknown voice provider", call({"voice": {"provider": "zzzzzz", "voiceId": "v"}}), False)
    yield Case("a number where a string goes", call({"firstMessage": 42}), False)
    yield Case("a string where a list goes", call({"endCallPhrases": "bye"}), False)
    yield Case("a string where a number goes", call({"maxDurationSeconds": "600"}), False)
    yield Case("a structured output schema that is a string", with_output("yes or no"), False)
    yield Case("function parameters that are a list", strict_function([{"type": "object"}]), False)


def valid_cases() -> Iterator[Case]:
    assistant = {
        "name": "Booker",
        "firstMessage": "Hello {{name}}",
        "transcriber": {"provider": "deepgram", "model": "nova-2", "language": "en"},
        "model": {
            **OPENAI,
            "temperature": 0.3,
            "messages": [{"role": "system", "content": "You book appointments."}],
            "tools": [
                {"type": "endCall"},
                {"type": "transferCall", "destinations": [{"type": "number", "number": NUMBER}]},
            ],
        },
        "voice": {"provider": "11labs", "voiceId": "burt", "chunkPlan": {"enabled": True}},
        "voicemailDetection": "off",
        "metadata": {"anything": {"goes": [1, "here"]}},
        "hooks": [{"on": "customer.speech.timeout", "do": [{"type": "say", "exact": "Are you there?"}]}],
        "server": {"url": "https://hooks.example.com/vapi", "headers": {"X-Vapi-Secret": "s"}},
    }
    yield Case("a full inline assistant", call(assistant), True)
    overrides = {
        "variableValues": {"name": "Ada"},
        "metadata": {"k": 1},
        "voice": {"provider": "vapi", "voiceId": "Elliot"},
    }
    yield Case(
        "a saved assistant with overrides, a schedule and a batch",
        {
            "assistantId": ASSISTANT_ID,
            "assistantOverrides": overrides,
            "phoneNumberId": PHONE_NUMBER_ID,
            "customers": [{"number": NUMBER}, {"number": "+14155550124", "name": "Bo"}],
            "schedulePlan": {"earliestAt": "2030-01-01T09:00:00Z", "latestAt": "2030-01-01T17:00:00Z"},
        },
        True,
    )


# -- the seed page ---------------------------------------------------------------------------------
_ALTERNATIVES = ("assistantId", "assistant", "squadId", "squad", "customerId", "phoneNumberId")


def seed_body(source: str, placeholders_fixed: bool = True) -> dict[str, Any]:
    """The seed's example with one speaker (``source``), as the client upgrades it for today's API."""
    seed = seed_payload()
    for key in _ALTERNATIVES:
        if key not in (source, "customer", "phoneNumber"):
            seed.pop(key, None)
    seed["customer"] = {"number": NUMBER, "name": "Seed Person", "extension": "12"}
    seed["phoneNumber"].update({"twilioPhoneNumber": "+14155550100", "twilioAccountSid": "AC-seed"})
    if placeholders_fixed:
        strings_where_the_spec_wants_them(seed)
    return upgrade_call_body(seed).body


def seed_cases() -> Iterator[Case]:
    for source in ("assistant", "squad", "assistantId"):
        yield Case(f"the seed with {source}", seed_body(source), True)
    yield Case("the seed with its {} placeholders", seed_body("assistant", placeholders_fixed=False), False)


# -- the example DAGs ------------------------------------------------------------------------------
#: Values of the examples that are computed at run time, by the key they go under.
SAMPLES: dict[str, Any] = {
    "number": NUMBER,
    "earliestAt": "2030-01-01T09:00:00-05:00",
    "latestAt": "2030-01-01T17:00:00-05:00",
}
_PARAM = re.compile(r"\{\{\s*params\.(\w+)\s*\}\}")
_RUN_ID = re.compile(r"\{\{\s*run_id\s*\}\}")


class _Source:
    """One example DAG file, read with :mod:`ast`: its constants, tasks and DAG params."""

    def __init__(self, path: Path, support: Mapping[str, Any]) -> None:
        self.tree = ast.parse(path.read_text(), str(path))
        self.functions = {n.name: n for n in ast.walk(self.tree) if isinstance(n, ast.FunctionDef)}
        self.assigned = {
            target.id: node.value
            for node in ast.walk(self.tree)
            if isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None
            for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
            if isinstance(target, ast.Name)
        }
        self.constants = dict(support)
        self.params: dict[str, Any] = {}
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Call) and _name(node.func) == "DAG":
                for keyword in node.keywords:
                    if keyword.arg == "params":
                        self.params = self.value(keyword.value, "params")

    def value(self, node: ast.expr, key: str) -> Any:
        """The value of ``node``; a sample for what only runs at run time."""
        if isinstance(node, ast.Constant):
            return self.render(node.value)
        if isinstance(node, ast.Dict):
            out: dict[Any, Any] = {}
            for k, v in zip(node.keys, node.values, strict=True):
                if k is None:  # ``**({...} if ... else {})``
                    spread = self.value(v, key)
                    out.update(spread if isinstance(spread, dict) else {})
                else:
                    name = self.value(k, key)
                    out[name] = self.value(v, str(name))
            return out
        if isinstance(node, ast.List | ast.Tuple):
            return [self.value(item, key) for item in node.elts]
        if isinstance(node, ast.IfExp):
            return self.value(node.body, key)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            left, right = self.value(node.left, key), self.value(node.right, key)
            return left + right if isinstance(left, str) and isinstance(right, str) else SAMPLES.get(key, "x")
        if isinstance(node, ast.Name):
            if node.id in self.constants:
                return self.constants[node.id]
            if node.id in self.assigned:
                return self.value(self.assigned[node.id], key)
        if isinstance(node, ast.Call):
            if _name(node.func) == "Param" and node.args:
                return self.value(node.args[0], key)
            task = self.functions.get(_name(node.func) or "")
            if task is not None:
                return self.returned(task, key)
        return SAMPLES.get(key, "x")

    def returned(self, function: ast.FunctionDef, key: str) -> Any:
        """What a ``@task`` function returns: one sample item of a returned list comprehension."""
        values = [n.value for n in ast.walk(function) if isinstance(n, ast.Return) and n.value is not None]
        for value in values:
            if isinstance(value, ast.ListComp):
                return [self.value(value.elt, key)]
        literal = [v for v in values if isinstance(v, ast.Dict | ast.List)]
        return self.value((literal or values)[0], key)

    def render(self, value: Any) -> Any:
        """Airflow's ``{{ params.x }}`` and ``{{ run_id }}`` rendered; Vapi's ``{{name}}`` kept."""
        if not isinstance(value, str):
            return value
        value = _PARAM.sub(lambda m: str(self.params.get(m.group(1), "x")), value)
        return _RUN_ID.sub("manual__2030-01-01T00:00:00+00:00", value)

    def place_calls(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """``(task_id, keyword arguments)`` of every ``PlaceCallOperator`` (mapped: one sample row)."""
        rows: dict[int, ast.expr] = {}
        for node in ast.walk(self.tree):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            if isinstance(node.func, ast.Attribute) and node.func.attr in ("expand_kwargs", "expand"):
                rows[id(node.func.value)] = node.args[0]
        for node in ast.walk(self.tree):
            if not isinstance(node, ast.Call) or ast.unparse(node.func) not in _OPERATOR:
                continue
            kwargs = {k.arg: self.value(k.value, k.arg) for k in node.keywords if k.arg}
            if id(node) in rows:
                sample = self.value(rows[id(node)], "rows")
                kwargs.update(sample[0] if isinstance(sample, list) else sample)
            yield str(kwargs.pop("task_id")), kwargs


_OPERATOR = ("PlaceCallOperator", "PlaceCallOperator.partial")


def _name(node: ast.expr) -> str | None:
    return node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else None


#: The operator's parameters that make the body (the rest: pool, retries, waiting ...).
_REQUEST_PARAMETERS = frozenset(
    {
        "assistant_id", "assistant", "assistant_overrides", "assistant_version", "squad_id", "squad",
        "squad_overrides", "workflow_id", "workflow", "workflow_overrides", "phone_number_id",
        "phone_number", "customer", "customer_id", "customers", "variable_values", "metadata",
        "schedule_plan", "name", "transport", "payload",
    }
)  # fmt: skip


def example_cases() -> Iterator[Case]:
    from airflow_provider_vapi.operators import PlaceCallOperator

    support_tree = ast.parse((EXAMPLES / "vapi_example_support.py").read_text())
    support = {
        t.id: n.value.value
        for n in support_tree.body
        if isinstance(n, ast.Assign) and isinstance(n.value, ast.Constant)
        for t in n.targets
        if isinstance(t, ast.Name)
    }
    for path in sorted(EXAMPLES.glob("*.py")):
        for task_id, kwargs in _Source(path, support).place_calls():
            request = {k: v for k, v in kwargs.items() if k in _REQUEST_PARAMETERS}
            body = PlaceCallOperator(task_id=task_id, **request).build_body()
            yield Case(f"example {path.stem}.{task_id}", body, True)


# -- the corpus and the two verdicts ---------------------------------------------------------------
def corpus() -> list[Case]:
    return [
        *seed_cases(),
        *example_cases(),
        *valid_cases(),
        *keyword_cases(),
        *refused_cases(),
    ]


def client_problems(body: Mapping[str, Any]) -> list[str]:
    """What the client refuses in ``body`` (``[]``: it would send it)."""
    try:
        CreateCallRequest.from_payload(copy.deepcopy(dict(body)))
    except ValidationError as exc:
        return [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]
    return []


def emulator_problems(body: Mapping[str, Any]) -> list[str]:
    """What the emulator answers 400 to in ``body`` (``[]``: it creates the call)."""
    return create_call_errors(copy.deepcopy(dict(body)))


def _verdict(problems: list[str]) -> str:
    return "accepts" if not problems else "refuses: " + "; ".join(problems)


@pytest.fixture(scope="module")
def cases() -> list[Case]:
    found = corpus()
    names = [case.name for case in found]
    assert len(names) == len(set(names)), "case names must be unique"
    return found


def test_both_sides_give_every_body_of_the_corpus_its_verdict(cases: list[Case]) -> None:
    wrong = []
    for case in cases:
        client, emulator = client_problems(case.body), emulator_problems(case.body)
        if (not client) != case.accepted or (not emulator) != case.accepted:
            expected = "accepted" if case.accepted else "refused"
            wrong.append(
                f"{case.name} (expected {expected}):\n"
                f"    client {_verdict(client)}\n    emulator {_verdict(emulator)}"
            )
    assert not wrong, f"{len(wrong)} of {len(cases)} bodies:\n" + "\n".join(wrong)


def test_what_the_client_sends_the_emulator_takes(cases: list[Case]) -> None:
    """The body on the wire (``to_wire``: legacy moved, snake_case renamed) of every accepted case."""
    refused = []
    for case in (c for c in cases if c.accepted):
        wire = CreateCallRequest.from_payload(copy.deepcopy(case.body)).to_wire()
        if emulator_problems(wire):
            refused.append(f"{case.name}: {emulator_problems(wire)}")
    assert not refused


def test_the_corpus_covers_what_the_issue_names(cases: list[Case]) -> None:
    names = {case.name for case in cases}
    examples = {name.split(".")[0] for name in names if name.startswith("example ")}
    placing = {
        f"example {path.stem}"
        for path in EXAMPLES.glob("*.py")
        if re.search(r"\bPlaceCallOperator(\.partial)?\(", path.read_text())
    }
    assert examples == placing and len(examples) >= 4, (examples, placing)
    for keyword in ("additionalProperties", "anyOf", "oneOf", "minItems", "$ref", "enum"):
        assert f"structured output schema with {keyword}" in names
        assert f"strict function parameters with {keyword}" in names
    assert any(name.startswith("the seed") for name in names)
    assert sum(not case.accepted for case in cases) >= 10


def test_the_example_bodies_are_read_from_the_dags(cases: list[Case]) -> None:
    """The survey's inline assistant (with its structured output) reaches the corpus as written."""
    survey = next(c.body for c in cases if c.name == "example vapi_outbound_survey.place_call")
    schema = survey["assistant"]["artifactPlan"]["structuredOutputs"][0]["schema"]
    assert schema["properties"]["satisfaction"] == {
        "type": "integer",
        "minimum": 1,
        "maximum": 5,
        "description": "1 (bad) to 5",
    }
    assert survey["assistantOverrides"]["variableValues"]["name"] == "x"
    reminder = next(c.body for c in cases if c.name.endswith("place_reminder"))
    assert reminder["schedulePlan"] == {"earliestAt": SAMPLES["earliestAt"], "latestAt": SAMPLES["latestAt"]}
    assert (
        reminder["assistantId"] == ASSISTANT_ID
        and "{{name}}" in reminder["assistantOverrides"]["firstMessage"]
    )


# -- over HTTP, and the emulator's own structured-output route ---------------------------------------
def test_the_emulator_answers_the_same_over_http(vapi_emulator: Any, cases: list[Case]) -> None:
    """The routes use the validation called above: the keyword and refusal cases, POSTed."""
    picked = [c for c in cases if c.name.startswith(("structured output", "strict function", "unknown"))]
    with vapi_emulator.client() as http:
        for case in picked:
            answer = http.post("/call", json=case.body)
            assert answer.status_code == (201 if case.accepted else 400), (case.name, answer.text)


@pytest.mark.parametrize("keyword", sorted(KEYWORD_SCHEMAS))
def test_a_saved_structured_output_takes_every_keyword(keyword: str) -> None:
    body = {"name": "answers", "schema": KEYWORD_SCHEMAS[keyword]}
    assert create_structured_output_errors(body) == []


# -- differences kept on purpose -------------------------------------------------------------------
#: Bodies the client sends and the emulator refuses, by design: (name, body, why).
DELIBERATE: list[tuple[str, dict[str, Any], str]] = [
    (
        "an override without its discriminator",
        {**call(), "assistantId": ASSISTANT_ID, "assistantOverrides": {"voice": {"speed": 1.1}}},
        "the client checks a partial override against every member of the union (a false refusal "
        "costs more than Vapi's 400); the emulator, like Vapi's class-validator, wants the provider",
    ),
    (
        "a structured output without a schema type",
        with_output({"properties": {"a": {"type": "string"}}}),
        "required properties and enums are the emulator's (JsonSchema.type is required); the client "
        "checks names and JSON types only",
    ),
]


@pytest.mark.parametrize(("name", "body", "why"), DELIBERATE, ids=[d[0] for d in DELIBERATE])
def test_the_deliberate_differences_stay_as_documented(name: str, body: dict[str, Any], why: str) -> None:
    assert client_problems(body) == [], why
    assert emulator_problems(body) != [], why


def test_the_verdicts_are_computed_from_the_bodies() -> None:
    """Guards the guard: both sides refuse a typo and accept its fix."""
    typo = call({"firstMesage": "hi"})
    assert client_problems(typo) and emulator_problems(typo)
    fixed = json.loads(json.dumps(typo).replace("firstMesage", "firstMessage"))
    assert client_problems(fixed) == [] == emulator_problems(fixed)
