"""The package's layers, read from its imports: no import circle, and no import running back up.

``ARCHITECTURE.md`` draws the layers; :data:`LAYERS` is that drawing, bottom first, and this test
keeps the two true together. Every ``import`` of the product package is read with :mod:`ast`,
``TYPE_CHECKING`` ones and imports inside functions included (they hide a loop from Python, not from
a reader). A module may import its own package and the layers below it, never one above; and no
set of modules may import each other round in a circle, in one layer or across layers. A module
that no layer claims fails too, so a new package has to take its place in the drawing.

On the tree before this refactor (f7a9f60) the test names, among others, the circle
``hooks -> campaigns.api -> hooks`` and the back-up import ``hooks -> campaigns.api``.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

PACKAGE = "airflow_provider_vapi"
ROOT = Path(__file__).resolve().parents[1] / PACKAGE

#: Bottom first. A name is a top-level module or package of ``airflow_provider_vapi`` ("" is the
#: package's own ``__init__``). Each layer may import itself and the layers before it.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("wire", ("exceptions", "secrets", "spec_table", "models", "wire")),
    ("idempotency", ("idempotency",)),
    ("hook", ("hook",)),
    ("rendering", ("rendering",)),
    ("results", ("results",)),
    ("waiting", ("waiting",)),
    ("structured_outputs", ("structured_outputs",)),
    ("placing", ("placing",)),
    ("landing", ("landing",)),
    ("campaigns", ("campaigns",)),
    ("call_events", ("call_events",)),
    ("faces", ("hooks", "operators", "sensors", "triggers", "")),
)
#: Apart from the product: imports product code only for these (data, not validators: it stays an
#: independent check of the client), and no product module imports it.
EMULATOR = "emulator"
EMULATOR_MAY_IMPORT = frozenset({"secrets", "spec_table"})


def modules() -> dict[str, Path]:
    """Every module of the package, by its name relative to the package ("" for the package)."""
    found = {}
    for path in ROOT.rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def imports(name: str, path: Path, known: dict[str, Path]) -> Iterator[tuple[str, int]]:
    """The product modules ``name`` imports (relative names), with the line of each import."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)] + ([node.module] if node.module else [])
                module = ".".join([PACKAGE, *base])
            else:
                module = node.module or ""
            # ``from pkg import name``: the module ``pkg.name`` when there is one, else ``pkg`` itself.
            targets = [
                f"{module}.{alias.name}" if f"{module}.{alias.name}"[len(PACKAGE) + 1 :] in known else module
                for alias in node.names
            ]
        for target in targets:
            if target != PACKAGE and not target.startswith(PACKAGE + "."):
                continue
            relative = target[len(PACKAGE) + 1 :]
            while relative and relative not in known:  # ``import pkg.mod.attr``: the module part
                relative = relative.rpartition(".")[0]
            if relative != name:
                yield relative, node.lineno


def layer_of(name: str) -> int | None:
    top = name.split(".")[0]
    for rank, (_, members) in enumerate(LAYERS):
        if top in members:
            return rank
    return None


def graph() -> dict[str, dict[str, int]]:
    known = modules()
    return {
        name: dict(imports(name, path, known))
        for name, path in known.items()
        if name.split(".")[0] != EMULATOR
    }


def circles(edges: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(edges):
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next((c for c in children if c in edges), None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_every_module_has_a_layer() -> None:
    homeless = sorted(name for name in graph() if layer_of(name) is None)
    assert not homeless, f"modules no layer of LAYERS claims (add them to ARCHITECTURE.md too): {homeless}"


def test_no_import_circle() -> None:
    loops = circles(graph())
    assert not loops, "import circles (TYPE_CHECKING imports included): " + "; ".join(
        " <-> ".join(loop) for loop in loops
    )


def test_no_import_runs_back_up() -> None:
    upward = []
    for name, targets in graph().items():
        own = layer_of(name)
        for target, line in targets.items():
            theirs = layer_of(target)
            if own is not None and theirs is not None and theirs > own:
                upward.append(
                    f"{name or PACKAGE} (layer {LAYERS[own][0]}) line {line} imports {target} "
                    f"(layer {LAYERS[theirs][0]})"
                )
    assert not upward, "imports running back up a layer:\n" + "\n".join(sorted(upward))


def test_the_emulator_stays_apart() -> None:
    known = modules()
    into = [
        f"{name} imports {target}"
        for name, targets in graph().items()
        for target in targets
        if target.split(".")[0] == EMULATOR
    ]
    out = [
        f"{name} imports {target}"
        for name, path in known.items()
        if name.split(".")[0] == EMULATOR
        for target, _ in imports(name, path, known)
        if target.split(".")[0] != EMULATOR and target not in EMULATOR_MAY_IMPORT
    ]
    assert not into, f"product code importing the emulator: {into}"
    assert not out, f"the emulator importing product code beyond {sorted(EMULATOR_MAY_IMPORT)}: {out}"


def test_the_checker_sees_a_circle_and_an_upward_import(tmp_path: Path) -> None:
    """The checks can fail: a made-up graph with a TYPE_CHECKING circle and an upward import."""
    edges = {"hook.core": {"campaigns.api": 3}, "campaigns.api": {"hook.core": 9}, "wire.paging": {}}
    assert circles(edges) == [["campaigns.api", "hook.core"]]
    module = tmp_path / "airflow_provider_vapi" / "hook" / "core.py"
    module.parent.mkdir(parents=True)
    module.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from airflow_provider_vapi.campaigns import api\n"
        "from ..wire.paging import iso\n"
    )
    known = {"hook.core": module, "campaigns.api": module, "wire.paging": module, "campaigns": module}
    assert dict(imports("hook.core", module, known)) == {"campaigns.api": 3, "wire.paging": 4}
    assert layer_of("campaigns.api") > layer_of("hook.core")  # type: ignore[operator]


def test_architecture_md_names_every_layer() -> None:
    text = (ROOT.parent / "ARCHITECTURE.md").read_text()
    missing = [member for _, members in LAYERS for member in members if member and f"`{member}" not in text]
    assert not missing, f"ARCHITECTURE.md does not name: {missing}"


def test_a_moved_trigger_keeps_its_public_class_path() -> None:
    """Airflow stores a deferred task's trigger by class path: the face's, whatever module holds it."""
    from airflow_provider_vapi.triggers import CallStatusTrigger

    path, _ = CallStatusTrigger(call_ids=["c"], deadline=None).serialize()
    assert path == "airflow_provider_vapi.triggers.CallStatusTrigger"


def test_the_faces_only_re_export() -> None:
    """``hooks``, ``operators``, ``sensors``, ``triggers``: a docstring, imports and ``__all__``,
    nothing of their own (else a second home for an idea)."""
    own = []
    for face in ("hooks", "operators", "sensors", "triggers"):
        path = ROOT / f"{face}.py"
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Import | ast.ImportFrom):
                continue
            if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):  # the docstring
                continue
            if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == ["__all__"]:
                continue
            own.append(f"{face}.py line {node.lineno}: {type(node).__name__}")
    assert not own, f"the faces define something of their own: {own}"


def test_every_import_path_the_package_names_works() -> None:
    """Docstring examples and references (``from airflow_provider_vapi.x import Y``) name real things."""
    import importlib

    broken = []
    for path in sorted(ROOT.rglob("*.py")):
        for line_no, line in enumerate(path.read_text().splitlines(), 1):
            for module, names in re.findall(r"from (airflow_provider_vapi[\w.]*) import ([\w, ]+)", line):
                for name in (n.split(" as ")[0].strip() for n in names.split(",") if n.strip()):
                    try:
                        found = importlib.import_module(module)
                        if not hasattr(found, name):
                            importlib.import_module(f"{module}.{name}")
                    except ImportError as exc:
                        broken.append(
                            f"{path.relative_to(ROOT.parent)}:{line_no}: {module} has no {name} ({exc})"
                        )
    assert not broken, "\n".join(broken)
