"""Which ``{{ }}`` in what the DAG author wrote is Airflow's, and which is Vapi's.

Vapi fills ``{{name}}``-style placeholders (LiquidJS) in prompts and first messages from
``variableValues`` at call time; Airflow renders templated fields with Jinja before the task runs,
with ``StrictUndefined``, so ``{{name}}`` would fail the task. The rule: **an expression is
Airflow's when it parses as Jinja and references a name Airflow provides** (a key of the task's
context such as ``ds``, ``params``, ``ti``, ``var``, ``conn``, ``macros``, or a
``user_defined_macros`` global), anywhere in the expression: ``{{ (ds) }}``, ``{{- ds -}}``,
``{{ 'x' ~ ds }}``, ``{{ 'yes' if params.n > 1 else 'no' }}`` are all Airflow's. Anything else
(``{{name}}``, ``{{customer.number}}``, ``{{"now" | date: "%H:%M"}}``, which is not even Jinja) is
Vapi's and is wrapped in ``{% raw %}`` so it reaches Vapi untouched.

``{% ... %}`` tags are left to Jinja (they are Airflow's). A text that already holds ``{% raw %}``
is taken as the author's own choice and left alone.

Which values are rendered at all (only what the author wrote; data never) is the rendering gate's
rule, in :mod:`airflow_provider_vapi.rendering.gate`, which uses this module.
"""

from __future__ import annotations

from collections.abc import Collection, Container, Iterator
from functools import cache
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    import jinja2
    from airflow.providers.common.compat.sdk import Context

#: How many ``}}`` after a ``{{`` are tried for an expression that holds ``}}`` itself
#: (``{{ {'a': {'b': ds}} }}``, ``{{ '}}' ~ ds }}``); past that the first ``}}`` closes it.
_MAX_CLOSERS: Final = 16


@cache
def _parser() -> jinja2.Environment:
    import jinja2

    return jinja2.Environment()


def _names(source: str) -> set[str] | None:
    """The names a ``{{ ... }}`` block reads, or ``None`` when it is not one Jinja expression."""
    import jinja2
    from jinja2 import nodes

    try:
        tree = _parser().parse(source)
    except (jinja2.TemplateSyntaxError, RecursionError, MemoryError):
        return None
    body = tree.body
    if len(body) != 1 or not isinstance(body[0], nodes.Output):
        return None
    if len(body[0].nodes) != 1 or isinstance(body[0].nodes[0], nodes.TemplateData):
        return None  # text or a second block inside: this "}}" closed an earlier block
    return {n.name for n in tree.find_all(nodes.Name) if n.ctx == "load"}


def _blocks(text: str) -> Iterator[tuple[int, int, set[str] | None]]:
    """Each ``{{ ... }}`` of ``text``: its start, its end, and its names (``None``: not Jinja)."""
    start = text.find("{{")
    while start != -1:
        first_end = text.find("}}", start + 2)
        if first_end == -1:  # never closed: not Airflow's either
            yield start, len(text), None
            return
        end, names = first_end + 2, None
        closer = first_end
        for _ in range(_MAX_CLOSERS):
            names = _names(text[start : closer + 2])
            if names is not None:
                end = closer + 2
                break
            closer = text.find("}}", closer + 1)
            if closer == -1:
                break
        if names is None:
            end = first_end + 2
        yield start, end, names
        start = text.find("{{", end)


def protect_vapi_placeholders(text: str, airflow_names: Container[str]) -> str:
    """Wrap every ``{{ ... }}`` that is not an Airflow expression in ``{% raw %}``."""
    if "{{" not in text or "{% raw %}" in text:
        return text
    pieces: list[str] = []
    done = 0
    for start, end, names in _blocks(text):
        block = text[start:end]
        pieces.append(text[done:start])
        if names and any(name in airflow_names for name in names):
            pieces.append(block)
        else:
            pieces.append("{% raw %}" + block + "{% endraw %}")
        done = end
    pieces.append(text[done:])
    return "".join(pieces)


def airflow_names(context: Context, env: jinja2.Environment | None) -> Collection[str]:
    """The names an Airflow expression reads: the context's keys and the DAG's own macros."""
    names = set(context)
    if env is not None:
        defaults = _parser().globals
        names.update(name for name in env.globals if name not in defaults)
    return names


def is_one_expression(text: str) -> bool:
    """Whether ``text`` (spaces around aside) is exactly one ``{{ ... }}`` Jinja expression."""
    stripped = text.strip()
    if not stripped.startswith("{{"):
        return False
    first = next(_blocks(stripped), None)
    return first is not None and first[1] == len(stripped) and first[2] is not None


def render_native(template: str, context: Context, env: jinja2.Environment) -> Any:
    """Render with the task's filters and globals, keeping the result's Python type.

    The rendering gate (:mod:`airflow_provider_vapi.rendering.gate`) renders its ``native_fields`` this
    way (``CallStatusSensor.call_id`` ...), so the ids of a mapped upstream stay a list on every
    Airflow version instead of becoming their text form. Jinja never renders the result again.
    """
    from jinja2.nativetypes import NativeEnvironment

    native = NativeEnvironment(undefined=env.undefined)
    native.filters.update(env.filters)
    native.globals.update(env.globals)
    return native.from_string(template).render(**context)
