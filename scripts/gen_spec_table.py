"""Write ``airflow_provider_vapi/spec_table.py``, the one spec table, from Vapi's OpenAPI spec.

Usage::

    python scripts/gen_spec_table.py [path/to/openapi.json]   # default: ../shared/vapi/openapi.json

The output is data only, read by two validators that share nothing else: the client's
(:mod:`airflow_provider_vapi.models.nested`, the inline objects of a ``POST /call`` body before it is
sent) and the emulator's (:mod:`airflow_provider_vapi.emulator.schema_check`, the bodies of the
routes it serves), so that the emulator stays an independent check of the client. It holds:

* ``SCHEMAS``: every object schema reachable from the request bodies, as ``{property: type}``;
* ``UNIONS``: the discriminated unions (``oneOf``/``anyOf`` of schemas) those types name;
* ``CALL_ROOTS``: the ``CreateCallDTO`` fields of :data:`CALL_ROOT_FIELDS` (what the client
  checks) -> type;
* ``BODIES``: the routes of :data:`ROUTES` (what the emulator checks) -> the schema of their body,
  as the spec's ``paths`` say.

**The type grammar.** A type is a short expression:

* ``str`` ``num`` ``int`` ``bool``; ``date`` (an ISO date-time string: a string to a type check);
* ``obj``: a free-form object, whose keys are not checked (``metadata``, ``headers``, and the
  schemas of :data:`FREE_FORM`: a JSON Schema, strict function ``parameters``, a GCP key file);
* ``any``: not checked at all (the spec is too loose to say);
* ``Name``: an object of the schema ``SCHEMAS[Name]`` (unknown properties are refused);
  ``A+B``: members of a ``oneOf`` that nothing tells apart, merged into one schema;
* ``~name``: a discriminated union, ``UNIONS[name] = (property, {value: schema})``; the member
  named ``*`` is the default (the one whose property is not an enum: taken for any other value
  and when the property is missing);
* ``[T]``: a list of ``T``; ``T|U``: either (``|`` inside ``[]`` belongs to the item type).

A ``oneOf``/``anyOf`` of schemas becomes a union keyed by the property telling its members apart:
the spec's ``discriminator``, else a string property whose ``enum`` differs in every member
(preferring ``provider``, then ``type``, then ``on``). Enums, bounds and required properties are
not copied (the spec lags Vapi on them; the emulator checks the few it needs by hand).
``tests/test_nested_validation.py`` fails when the committed module differs from what this script
writes; ``tests/test_spec_table_agreement.py`` runs bodies through both validators.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SPEC = REPO.parent / "shared" / "vapi" / "openapi.json"
OUTPUT = REPO / "airflow_provider_vapi" / "spec_table.py"

#: The fields of ``CreateCallDTO`` whose inline objects the client checks.
CALL_ROOT_FIELDS = (
    "assistant", "assistantOverrides", "customer", "customers", "squad", "squadOverrides",
    "schedulePlan", "workflowOverrides", "phoneNumber",
)  # fmt: skip
#: The routes whose bodies the emulator checks.
ROUTES = (
    "POST /call", "PATCH /call/{id}", "DELETE /call/{id}", "POST /assistant",
    "POST /v2/campaign", "PATCH /v2/campaign/{id}",
    "POST /structured-output", "PATCH /structured-output/{id}", "POST /structured-output/run",
)  # fmt: skip
#: Schemas typed ``obj`` (an object whose keys are not checked), with the reason.
FREE_FORM = {
    "JsonSchema": "a user-written JSON Schema: Vapi forwards it to the model, any keyword may be meant",
    "OpenAIFunctionParameters": "a JSON Schema too (OpenAI strict mode wants additionalProperties)",
    "GcpKey": "the key file Google Cloud generates (snake_case keys, unlike the spec's camelCase)",
}
#: Preferred discriminators, in order, when several properties could tell members apart.
PREFERRED = ("provider", "type", "on")
PRIMITIVES = {"string": "str", "number": "num", "integer": "int", "boolean": "bool", "object": "obj"}


def _ref(node: Mapping[str, Any]) -> str:
    return str(node["$ref"]).rsplit("/", 1)[-1]


class Generator:
    """Walks the spec from the request bodies and collects schemas and unions."""

    def __init__(self, spec: Mapping[str, Any]) -> None:
        self.spec = spec
        self.schemas: Mapping[str, Any] = spec["components"]["schemas"]
        self.table: dict[str, dict[str, str]] = {}
        self.merged: dict[str, list[str]] = {}
        self.unions: dict[str, tuple[str, dict[str, str]]] = {}
        self.pending: set[str] = set()

    # -- types ---------------------------------------------------------------------------------
    def schema_type(self, name: str) -> str:
        if name in FREE_FORM:
            return "obj"
        if name not in self.table:
            self.pending.add(name)
        return name

    def type_of(self, node: Mapping[str, Any], hint: str) -> str:
        """The type expression of one property (``hint`` names a union first met here)."""
        if "oneOf" in node or "anyOf" in node:
            return self.one_of(node.get("oneOf") or node["anyOf"], node.get("discriminator"), hint)
        if "$ref" in node:
            return self.schema_type(_ref(node))
        if "allOf" in node:
            parts = node["allOf"]
            return self.type_of(parts[0], hint) if len(parts) == 1 else "any"
        kind = node.get("type")
        if kind == "array":
            return f"[{self.type_of(node.get('items') or {}, hint)}]"
        if kind == "string" and node.get("format") == "date-time":
            return "date"
        return PRIMITIVES.get(kind, "any") if isinstance(kind, str) else "any"

    def one_of(self, members: list[Any], explicit: Mapping[str, Any] | None, hint: str) -> str:
        refs = [_ref(m) for m in members if "$ref" in m and _ref(m) not in FREE_FORM]
        alternatives = [self.type_of(m, hint) for m in members if "$ref" not in m]
        alternatives += ["obj" for m in members if "$ref" in m and _ref(m) in FREE_FORM]
        if refs and "obj" not in alternatives:  # a free-form member takes any object already
            alternatives.append(self.union(refs, explicit, hint))
        unique = list(dict.fromkeys(alternatives))
        return "any" if "any" in unique else "|".join(unique)

    # -- unions --------------------------------------------------------------------------------
    def union(self, refs: list[str], explicit: Mapping[str, Any] | None, hint: str) -> str:
        found = self.discriminate(refs, explicit)
        if found is None:
            return self.schema_type(refs[0]) if len(refs) == 1 else self.merge(refs)
        prop, groups = found
        mapping = {
            value: self.schema_type(names[0]) if len(names) == 1 else self.merge(names)
            for value, names in groups.items()
        }
        for name, existing in self.unions.items():
            if existing == (prop, mapping):
                return f"~{name}"
        hint = hint.split(":")[0]  # ``tools:append`` -> ``tools``
        name, suffix = hint, 2
        while name in self.unions:
            name, suffix = f"{hint}{suffix}", suffix + 1
        self.unions[name] = (prop, mapping)
        return f"~{name}"

    def enum_of(self, schema: str, prop: str) -> list[str]:
        node = self.schemas[schema].get("properties", {}).get(prop) or {}
        return [v for v in node.get("enum") or [] if isinstance(v, str)]

    def discriminate(
        self, refs: list[str], explicit: Mapping[str, Any] | None
    ) -> tuple[str, dict[str, list[str]]] | None:
        """The property telling members apart and value -> members (``*``: the default member)."""
        if explicit:
            groups: dict[str, list[str]] = {}
            for value, ref in explicit.get("mapping", {}).items():
                groups.setdefault(value, []).append(ref.rsplit("/", 1)[-1])
            return str(explicit["propertyName"]), groups
        candidates = sorted(
            {p for name in refs for p in self.schemas[name].get("properties", {}) if self.enum_of(name, p)},
            key=lambda p: (PREFERRED.index(p) if p in PREFERRED else len(PREFERRED), p),
        )
        for prop in candidates:
            groups, defaults = {}, [name for name in refs if not self.enum_of(name, prop)]
            for name in refs:
                for value in self.enum_of(name, prop):
                    groups.setdefault(value, []).append(name)
            single = all(len(self.enum_of(name, prop)) <= 1 for name in refs)
            if single and len(defaults) <= 1 and all(len(names) == 1 for names in groups.values()):
                return prop, {**groups, **({"*": defaults} if defaults else {})}
        return None

    def merge(self, names: Iterable[str]) -> str:
        """One schema accepting the properties of several that cannot be told apart."""
        members = sorted(set(names))
        name = "+".join(members)
        self.merged[name] = members
        if name not in self.table:
            self.pending.add(name)
        return name

    # -- schemas -------------------------------------------------------------------------------
    def properties(self, name: str) -> dict[str, str]:
        if name in self.merged:
            out: dict[str, str] = {}
            for member in self.merged[name]:
                for prop, kind in self.properties(member).items():
                    alternatives = [*out.get(prop, "").split("|"), kind] if prop in out else [kind]
                    joined = "|".join(dict.fromkeys(alternatives))
                    out[prop] = "any" if "any" in alternatives else joined
            return out
        props = self.schemas[name].get("properties", {})
        return {prop: self.type_of(node, prop) for prop, node in props.items()}

    def bodies(self) -> dict[str, str]:
        """Route -> the schema of its JSON body, from the spec's ``paths``."""
        out = {}
        for route in ROUTES:
            method, path = route.split(" ", 1)
            operation = self.spec["paths"][path][method.lower()]
            out[route] = _ref(operation["requestBody"]["content"]["application/json"]["schema"])
        return out

    def run(self) -> tuple[dict[str, str], dict[str, str]]:
        """Fill the tables; return (``CreateCallDTO`` root field -> type, route -> body schema)."""
        call = self.schemas["CreateCallDTO"]["properties"]
        roots = {field: self.type_of(call[field], field) for field in CALL_ROOT_FIELDS}
        bodies = self.bodies()
        for schema in bodies.values():
            self.schema_type(schema)
        while self.pending:
            name = min(self.pending)
            self.pending.discard(name)
            self.table[name] = self.properties(name)
        return roots, bodies


def _literal(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def render(spec: Mapping[str, Any]) -> str:
    """The text of ``spec_table.py`` for ``spec``."""
    generator = Generator(spec)
    roots, bodies = generator.run()
    version = spec.get("info", {}).get("version", "?")
    lines = [
        "\"\"\"Vapi's request schemas as data: the one table of the client's checks and the emulator's. GENERATED.",
        "",
        f"Written by ``scripts/gen_spec_table.py`` from Vapi's OpenAPI spec (version {version}); do not",
        "edit: run ``python scripts/gen_spec_table.py`` after updating the spec. Its docstring describes",
        "the type grammar. Data only: :mod:`airflow_provider_vapi.models.nested` (the client) and",
        ":mod:`airflow_provider_vapi.emulator.schema_check` (the emulator) each check bodies against it",
        "with a validator of their own, so that the emulator stays an independent check of the client.",
        '"""',
        "",
        "from typing import Final",
        "",
        "# fmt: off",
        "#: ``CreateCallDTO`` field -> type of what it holds (the inline objects the client checks).",
        f"CALL_ROOTS: Final[dict[str, str]] = {_literal(roots)}",
        "#: Route -> the schema of its body (the bodies the emulator checks).",
        f"BODIES: Final[dict[str, str]] = {_literal(bodies)}",
        "#: Union name -> (discriminator property, value -> type); ``*`` is the member without one.",
        "UNIONS: Final[dict[str, tuple[str, dict[str, str]]]] = {",
    ]
    for name in sorted(generator.unions):
        prop, mapping = generator.unions[name]
        lines.append(f"    {_literal(name)}: ({_literal(prop)}, {_literal(dict(sorted(mapping.items())))}),")
    lines += ["}", "#: Schema name -> property -> type.", "SCHEMAS: Final[dict[str, dict[str, str]]] = {"]
    for name in sorted(generator.table):
        lines.append(f"    {_literal(name)}: {_literal(generator.table[name])},")
    lines += ["}", "# fmt: on", ""]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    spec_path = Path(argv[1]) if len(argv) > 1 else DEFAULT_SPEC
    text = render(json.loads(spec_path.read_text()))
    OUTPUT.write_text(text)
    print(f"wrote {OUTPUT} ({len(text.encode())} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
