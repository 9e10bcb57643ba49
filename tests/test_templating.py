"""Vapi's {{placeholders}} survive Airflow's Jinja; Airflow's own expressions are rendered."""

from __future__ import annotations

import jinja2

from airflow_provider_vapi.templating import protect_vapi_placeholders

CONTEXT = {"ds": "2026-11-24", "params": {"clinic": "Northside"}}


def render(text: str) -> str:
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    return env.from_string(protect_vapi_placeholders(text, CONTEXT)).render(**CONTEXT)


def test_vapi_placeholders_pass_through_untouched() -> None:
    text = 'Hi {{name}}, it is {{ "now" | date: "%H:%M" }}; your number {{customer.number}}.'
    assert render(text) == text


def test_airflow_expressions_render_next_to_placeholders() -> None:
    text = "Calling {{name}} for {{ params.clinic }} on {{ ds }}."
    assert render(text) == "Calling {{name}} for Northside on 2026-11-24."


def test_text_without_braces_and_explicit_raw_are_left_alone() -> None:
    assert protect_vapi_placeholders("plain", CONTEXT) == "plain"
    raw = "{% raw %}{{name}}{% endraw %} {{ ds }}"
    assert protect_vapi_placeholders(raw, CONTEXT) == raw
