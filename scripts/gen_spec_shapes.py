"""Write ``airflow_provider_vapi/models/spec_shapes.py`` from Vapi's OpenAPI spec.

Usage::

    python scripts/gen_spec_shapes.py [path/to/openapi.json]   # default: ../shared/vapi/openapi.json

The output is the data :mod:`airflow_provider_vapi.models.nested` checks inline objects of a
``POST /call`` body against: every schema reachable from the fields of ``CreateCallDTO`` in
:data:`ROOT_FIELDS`, each as ``{property: type}``. A type is a short expression:

* ``str`` ``num`` ``int`` ``bool`` ``date`` (an ISO date-time string), ``obj`` (a free-form
  object: its keys are not checked), ``any`` (the spec is too loose to check);
* ``Name``: another schema of the table; ``~name``: a discriminated union of :data:`UNIONS`;
* ``[T]``: an array of ``T``; ``T|U``: either.

A ``oneOf`` of schemas becomes a union keyed by the property telling its members apart (the
spec's ``discriminator``, else a string property whose ``enum`` differs in every member: ``provider``
for models, ``type`` for tools, ``on`` for hooks). A member without that property is the default
(``*``); members that cannot be told apart are merged into one schema named ``A+B``. Enums, bounds
and required properties are not copied (the spec lags Vapi on them; a false refusal is worse
than Vapi's own 400). ``tests/test_nested_validation.py`` fails when the committed module differs
from what this script writes.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SPEC = REPO.parent / "shared" / "vapi" / "openapi.json"
OUTPUT = REPO / "airflow_provider_vapi" / "models" / "spec_shapes.py"

#: The fields of ``CreateCallDTO`` whose inline objects are checked.
ROOT_FIELDS = (
    "assistant", "assistantOverrides", "customer", "customers", "squad", "squadOverrides",
    "schedulePlan", "workflowOverrides", "phoneNumber",
)  # fmt: skip
#: Schemas not checked (typed ``any``), with the reason.
LOOSE = {
    "JsonSchema": "a user-written JSON Schema: Vapi forwards it to the model, any keyword may be meant",
    "OpenAIFunctionParameters": "a JSON Schema too (OpenAI strict mode wants additionalProperties)",
    "GcpKey": "the key file Google Cloud generates (snake_case keys, unlike the spec's camelCase)",
}
#: Preferred discriminators, in order, when several properties could tell members apart.
PREFERRED = ("provider", "type", "on")
PRIMITIVES = {"string": "str", "number": "num", "integer": "int", "boolean": "bool", "object": "obj"}


class Generator:
    """Walks the spec from :data:`ROOT_FIELDS` and collects schemas and unions."""

    def __init__(self, spec: Mapping[str, Any]) -> None:
        self.schemas: Mapping[str, Any] = spec["components"]["schemas"]
        self.table: dict[str, dict[str, str]] = {}
        self.merged: dict[str, list[str]] = {}
        self.unions: dict[str, tuple[str, dict[str, str]]] = {}
        self.pending: set[str] = set()

    # -- types ---------------------------------------------------------------------------------
    def schema_type(self, name: str) -> str:
        if name in LOOSE:
            return "any"
        if name not in self.table:
            self.pending.add(name)
        return name

    def type_of(self, node: Mapping[str, Any], hint: str) -> str:
        """The type expression of one property (``hint`` names a union first met here)."""
        if "oneOf" in node or "anyOf" in node:
            return self.one_of(node.get("oneOf") or node["anyOf"], node.get("discriminator"), hint)
        if "$ref" in node:
            return self.schema_type(node["$ref"].rsplit("/", 1)[-1])
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
        refs = [m["$ref"].rsplit("/", 1)[-1] for m in members if "$ref" in m]
        alternatives = [self.type_of(m, hint) for m in members if "$ref" not in m]
        if any(name in LOOSE for name in refs):
            return "any"
        if refs:
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

    def run(self) -> dict[str, str]:
        """Fill the tables; return ``CreateCallDTO`` root field -> type."""
        call = self.schemas["CreateCallDTO"]["properties"]
        roots = {field: self.type_of(call[field], field) for field in ROOT_FIELDS}
        while self.pending:
            name = min(self.pending)
            self.pending.discard(name)
            self.table[name] = self.properties(name)
        return roots


def _literal(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _tuple(values: Iterable[str]) -> str:
    return "(" + ", ".join(_literal(value) for value in values) + ",)"


def render(spec: Mapping[str, Any]) -> str:
    """The text of ``spec_shapes.py`` for ``spec``."""
    generator = Generator(spec)
    roots = generator.run()
    version = spec.get("info", {}).get("version", "?")
    lines = [
        '"""Vapi request schemas as data, for :mod:`airflow_provider_vapi.models.nested`. GENERATED.',
        "",
        f"Written by ``scripts/gen_spec_shapes.py`` from Vapi's OpenAPI spec (version {version}); do not",
        "edit: run ``python scripts/gen_spec_shapes.py`` after updating the spec. The type grammar is",
        "described there.",
        '"""',
        "",
        "from typing import Final",
        "",
        "# fmt: off",
        "#: Every property of ``CreateCallDTO`` (the top of a ``POST /call`` body).",
        f"CALL_FIELDS: Final[tuple[str, ...]] = {_tuple(spec['components']['schemas']['CreateCallDTO']['properties'])}",
        "#: ``CreateCallDTO`` field -> type of what it holds.",
        f"ROOTS: Final[dict[str, str]] = {_literal(roots)}",
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
