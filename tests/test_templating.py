"""Vapi's {{placeholders}} survive Airflow's Jinja; Airflow's own expressions are rendered."""

from __future__ import annotations

import jinja2

from airflow_provider_vapi.rendering.templating import protect_vapi_placeholders

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


def test_an_expression_is_airflows_when_it_reads_an_airflow_name_anywhere() -> None:
    context = {**CONTEXT, "params": {"clinic": "Northside", "n": 2}}
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    cases = {
        "{{ (ds) }}": "2026-11-24",
        "{{- ds -}}": "2026-11-24",
        "{{ 'x' ~ ds }}": "x2026-11-24",
        "{{ 'yes' if params.n > 1 else 'no' }}": "yes",
        "{{ {'a': {'b': ds}}['a']['b'] }}": "2026-11-24",
        "{{ '}}' ~ ds }}": "}}2026-11-24",
        "{{ds}}{{name}}": "2026-11-24{{name}}",
        "{{name}}{{ds}}": "{{name}}2026-11-24",
        "{{ name | upcase }} {{ ds }}": "{{ name | upcase }} 2026-11-24",
        '{{"now" | date: "%H:%M"}} {{ ds }}': '{{"now" | date: "%H:%M"}} 2026-11-24',
        "{{ unclosed": "{{ unclosed",
    }
    for text, expected in cases.items():
        protected = protect_vapi_placeholders(text, context)
        assert env.from_string(protected).render(**context) == expected, text


def test_the_dags_own_macros_count_as_airflow_names() -> None:
    from airflow_provider_vapi.rendering.templating import airflow_names

    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    env.globals["clinic_code"] = lambda: "NS-1"
    names = airflow_names(CONTEXT, env)
    assert "clinic_code" in names and "ds" in names
    assert "range" not in names, "Jinja's own globals do not make an expression Airflow's"
    text = "{{ clinic_code() }} {{name}}"
    assert env.from_string(protect_vapi_placeholders(text, names)).render(**CONTEXT) == "NS-1 {{name}}"
