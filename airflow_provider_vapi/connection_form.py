"""The Vapi connection form, defined once.

Airflow 3.2+ builds the form from provider metadata alone (``conn-fields`` as JSON Schema and
``ui-field-behaviour``); Airflow 2.11 to 3.1 ask the hook (``get_connection_form_widgets`` and
``get_ui_field_behaviour``). Both are generated from the dictionaries below so they cannot drift.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_vapi.retries import RetryPolicy

_DEFAULT_POLICY = RetryPolicy()
#: The extra holding the *public* API key (its name makes Airflow mask its value too). Kept here, not
#: in ``transport``: this module is imported by Airflow's provider discovery and must stay light.
PUBLIC_KEY_EXTRA = "public_api_key"

# Extra fields, in ``conn-fields`` form (stored in the connection's extra JSON under these names).
CONN_FIELDS: dict[str, dict[str, Any]] = {
    "timeout": {
        "label": "Request timeout (s)",
        "schema": {"type": ["number", "null"], "default": 30},
        "description": "Seconds to wait for one answer from Vapi before retrying.",
    },
    "max_retries": {
        "label": "Attempts per request",
        "schema": {"type": ["integer", "null"], "default": _DEFAULT_POLICY.max_attempts},
        "description": "Attempts in all for a request that fails with 429, 5xx or a network error.",
    },
    "retry_max_wait": {
        "label": "Longest wait between attempts (s)",
        "schema": {"type": ["number", "null"], "default": _DEFAULT_POLICY.max_delay},
    },
    "retry_total_seconds": {
        "label": "Retry budget per request (s)",
        "schema": {"type": ["number", "null"], "default": _DEFAULT_POLICY.max_total},
    },
    PUBLIC_KEY_EXTRA: {
        "label": "Public API key",
        # "password": Airflow 3.2+ shows it masked and treats it as sensitive.
        "schema": {"type": ["string", "null"], "format": "password"},
        "description": (
            "Optional. Your Vapi *public* key, needed to end a live call whose assistant locks its "
            "control URL (monitorPlan.controlAuthenticationEnabled). Sent to control URLs only; the "
            "private key above is never sent there."
        ),
    },
    "create_settle_seconds": {
        "label": "Create settle time (s)",
        "schema": {"type": ["number", "null"], "default": 120},
        "description": (
            "After a call create got no clear answer (timeout, dropped connection, 5xx), how long "
            "it may still produce its call: the hook never sends it again before then."
        ),
    },
}

UI_FIELD_BEHAVIOUR: dict[str, Any] = {
    "hidden_fields": ["schema", "port", "login", "extra"],
    "relabeling": {"host": "Base URL", "password": "API key (private)"},
    "placeholders": {
        "host": "https://api.vapi.ai",
        "password": "Your Vapi private API key (Dashboard -> Organization -> API Keys)",
        "timeout": "30",
        "max_retries": str(_DEFAULT_POLICY.max_attempts),
        PUBLIC_KEY_EXTRA: "Only for assistants that lock their control URL",
    },
}


def provider_ui_field_behaviour() -> dict[str, Any]:
    """``UI_FIELD_BEHAVIOUR`` in the kebab-case form of provider metadata."""
    return {
        "hidden-fields": list(UI_FIELD_BEHAVIOUR["hidden_fields"]),
        "relabeling": dict(UI_FIELD_BEHAVIOUR["relabeling"]),
        "placeholders": dict(UI_FIELD_BEHAVIOUR["placeholders"]),
    }


def legacy_form_widgets() -> dict[str, Any]:
    """WTForms widgets for Airflow 2.11 to 3.1; empty where WTForms is absent (Airflow 3.2+)."""
    try:
        from flask_appbuilder.fieldwidgets import BS3PasswordFieldWidget, BS3TextFieldWidget
        from wtforms import IntegerField, PasswordField, StringField
    except ImportError:
        return {}
    widgets: dict[str, Any] = {}
    for name, spec in CONN_FIELDS.items():
        description = spec.get("description")
        if spec["schema"].get("format") == "password":
            # A password widget: Airflow 2.x masks it and counts the field as sensitive.
            widgets[name] = PasswordField(
                spec["label"], widget=BS3PasswordFieldWidget(), description=description
            )
            continue
        # Airflow 2.x accepts only Integer/String/Password/Boolean fields: numbers go in as text.
        kind = IntegerField if "integer" in spec["schema"]["type"] else StringField
        widgets[name] = kind(spec["label"], widget=BS3TextFieldWidget(), description=description)
    return widgets
