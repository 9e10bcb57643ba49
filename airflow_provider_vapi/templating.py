"""Let Vapi's ``{{placeholders}}`` and Airflow's Jinja share the same ``{{ }}`` syntax.

Vapi fills ``{{name}}``-style placeholders (LiquidJS) in prompts and first messages from
``variableValues`` at call time; Airflow renders templated fields with Jinja before the task runs,
with ``StrictUndefined``, so ``{{name}}`` would fail the task. The rule: an expression whose first
name is something Airflow's template context knows (``ds``, ``params``, ``ti``, ``var``, ``macros``,
...) is Airflow's and is rendered; any other ``{{ ... }}`` (``{{name}}``, ``{{customer.number}}``,
``{{"now" | date: "%H:%M"}}``) is Vapi's and reaches Vapi untouched.
"""

from __future__ import annotations

import re
from collections.abc import Container
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import jinja2
    from airflow.providers.common.compat.sdk import Context

_EXPRESSION = re.compile(r"\{\{(.*?)\}\}", re.S)
_LEADING_NAME = re.compile(r"\s*([A-Za-z_]\w*)")


def protect_vapi_placeholders(text: str, airflow_names: Container[str]) -> str:
    """Wrap every ``{{ ... }}`` that is not an Airflow expression in ``{% raw %}``."""

    def keep(match: re.Match[str]) -> str:
        name = _LEADING_NAME.match(match.group(1))
        if name and name.group(1) in airflow_names:
            return match.group(0)
        return "{% raw %}" + match.group(0) + "{% endraw %}"

    if "{{" not in text or "{% raw %}" in text:
        return text
    return _EXPRESSION.sub(keep, text)


def render_native(template: str, context: Context, env: jinja2.Environment) -> Any:
    """Render with the task's filters and globals, keeping the result's Python type.

    ``CallStatusSensor`` renders ``call_id`` this way, so the ids of a mapped upstream stay a list
    on every Airflow version instead of becoming their text form.
    """
    from jinja2.nativetypes import NativeEnvironment

    native = NativeEnvironment(undefined=env.undefined)
    native.filters.update(env.filters)
    native.globals.update(env.globals)
    return native.from_string(template).render(**context)
