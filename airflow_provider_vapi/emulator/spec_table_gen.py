"""Generate :mod:`.spec_schemas` (the request schemas the emulator validates) from Vapi's OpenAPI spec.

Run ``python -m airflow_provider_vapi.emulator.spec_table_gen /path/to/openapi.json`` when the spec
moves (the data lines are written one per schema, between ``# fmt: off`` and ``# fmt: on``).
``tests/emulator/test_spec_schemas.py`` fails when the carried table and :func:`build` disagree.

What is kept of each schema reachable from the request bodies in :data:`ROOTS`: its property names,
each with a *type code*:

* ``string`` ``number`` ``integer`` ``boolean`` ``object`` (any object) or ``any`` (not checked);
  primitive alternatives of a ``oneOf`` are joined with ``|`` (``number|string``);
* ``#Name``: the object schema ``Name`` (its own property table);
* ``@Name``: a ``oneOf`` picked by a discriminator property (the ``discriminator`` of the spec, or,
  when absent, a property every branch declares as an enum with values no other branch has), kept
  in ``UNIONS[Name] = (property, {value: schema})``;
* ``[]`` + a code: an array of those.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

#: The request bodies (``CreateCallDTO`` covers inline assistants, squads, workflows, customers).
#: The roots are walked last first, so the campaign and structured-output bodies come first here:
#: the unions they share with the call bodies keep the names the call bodies gave them.
ROOTS = (
    "UpdateCampaignDTO",
    "CreateCampaignDTO",
    "StructuredOutputRunDTO",
    "UpdateStructuredOutputDTO",
    "CreateStructuredOutputDTO",
    "CreateCallDTO",
    "CreateAssistantDTO",
    "UpdateCallDTO",
    "DeleteCallDTO",
)
PRIMITIVES = frozenset({"string", "number", "integer", "boolean", "object"})
TARGET = Path(__file__).with_name("spec_schemas.py")

Objects = dict[str, dict[str, str]]
Unions = dict[str, tuple[str, dict[str, str]]]


def _ref_name(node: dict[str, Any]) -> str:
    return str(node["$ref"]).rsplit("/", 1)[-1]


class _Builder:
    """Walks the schemas reachable from the roots, building both tables."""

    def __init__(self, schemas: dict[str, Any]) -> None:
        self.schemas = schemas
        self.objects: Objects = {}
        self.unions: Unions = {}
        self._union_names: dict[tuple[str, tuple[tuple[str, str], ...]], str] = {}
        self._todo: list[str] = []

    def run(self, roots: tuple[str, ...]) -> tuple[Objects, Unions]:
        self._todo = list(roots)
        while self._todo:
            name = self._todo.pop()
            if name in self.objects:
                continue
            self.objects[name] = {}
            props = self.schemas[name].get("properties", {})
            self.objects[name] = {key: self.code(props[key], f"{name}.{key}") for key in sorted(props)}
        return dict(sorted(self.objects.items())), dict(sorted(self.unions.items()))

    def code(self, node: Any, where: str) -> str:
        """The type code of one schema node."""
        if not isinstance(node, dict):
            return "any"
        if "$ref" in node:
            return self._ref(_ref_name(node), where)
        all_of = node.get("allOf")
        if isinstance(all_of, list) and len(all_of) == 1:
            return self.code(all_of[0], where)
        if isinstance(node.get("oneOf"), list):
            return self._one_of(node, where)
        kind = node.get("type")
        if kind == "array":
            return "[]" + self.code(node.get("items"), where)
        return kind if kind in PRIMITIVES else "any"

    def _ref(self, name: str, where: str) -> str:
        schema = self.schemas[name]
        if "properties" in schema:
            self._todo.append(name)
            return f"#{name}"
        return self.code(schema, where)

    def _one_of(self, node: dict[str, Any], where: str) -> str:
        branches = node["oneOf"]
        if len(branches) == 1:
            return self.code(branches[0], where)
        found = _discriminator(node, self.schemas)
        if found is not None:
            return "@" + self._union(where, *found)
        plain = all(isinstance(b, dict) and "$ref" not in b for b in branches)
        kinds = {b.get("type") for b in branches} if plain else set()
        if kinds and kinds <= PRIMITIVES:
            return "|".join(sorted(str(k) for k in kinds))
        return "any"

    def _union(self, where: str, prop: str, mapping: dict[str, str]) -> str:
        key = (prop, tuple(sorted(mapping.items())))
        name = self._union_names.get(key)
        if name is None:
            name = self._union_names[key] = where
            self.unions[name] = (prop, dict(sorted(mapping.items())))
            self._todo.extend(mapping.values())
        return name


def _discriminator(node: dict[str, Any], schemas: dict[str, Any]) -> tuple[str, dict[str, str]] | None:
    """``(property, {value: schema})`` of a ``oneOf`` of object schemas, declared or implied."""
    declared = node.get("discriminator")
    if isinstance(declared, dict) and isinstance(declared.get("mapping"), dict):
        mapping = {str(v): str(ref).rsplit("/", 1)[-1] for v, ref in declared["mapping"].items()}
        return str(declared["propertyName"]), mapping
    branches = node["oneOf"]
    if not all(isinstance(b, dict) and "$ref" in b for b in branches):
        return None
    names = [_ref_name(b) for b in branches]
    props = [schemas[n].get("properties", {}) for n in names]
    shared = set.intersection(*({k for k, v in p.items() if "enum" in v} for p in props))
    for prop in sorted(shared):
        mapping = {
            str(value): name for name, p in zip(names, props, strict=True) for value in p[prop]["enum"]
        }
        if len(mapping) == sum(len(p[prop]["enum"]) for p in props):
            return prop, mapping
    return None


def build(spec: dict[str, Any]) -> tuple[Objects, Unions]:
    """``(OBJECTS, UNIONS)`` of :mod:`.spec_schemas` from a parsed spec."""
    return _Builder(spec["components"]["schemas"]).run(ROOTS)


_HEADER = '''"""GENERATED by ``python -m airflow_provider_vapi.emulator.spec_table_gen <openapi.json>``: do not edit.

The request schemas of Vapi's OpenAPI spec (VapiAI/docs ``fern/apis/api/openapi.json``) as the emulator
validates them: each object schema's property names with a type code (see :mod:`.spec_table_gen`).
``tests/emulator/test_spec_schemas.py`` fails when this table and the spec disagree.
"""

from __future__ import annotations

# fmt: off
'''


def render(objects: Objects, unions: Unions) -> str:
    """The source of :mod:`.spec_schemas`: one line per schema."""
    lines = [_HEADER, "OBJECTS: dict[str, dict[str, str]] = {"]
    lines += [f"    {json.dumps(name)}: {json.dumps(props)}," for name, props in objects.items()]
    lines += ["}", "", "UNIONS: dict[str, tuple[str, dict[str, str]]] = {"]
    lines += [
        f"    {json.dumps(name)}: ({json.dumps(p)}, {json.dumps(m)})," for name, (p, m) in unions.items()
    ]
    lines += ["}", "# fmt: on", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Write :mod:`.spec_schemas` from the spec file named on the command line."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m airflow_provider_vapi.emulator.spec_table_gen OPENAPI_JSON", file=sys.stderr)
        return 2
    objects, unions = build(json.loads(Path(args[0]).read_text()))
    TARGET.write_text(render(objects, unions))
    print(f"wrote {TARGET}: {len(objects)} schemas, {len(unions)} unions")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
