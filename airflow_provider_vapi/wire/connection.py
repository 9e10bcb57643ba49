"""The Vapi connection: its form, defined once, and what a hook reads from it.

Airflow 3.2+ builds the form from provider metadata alone (``conn-fields`` as JSON Schema and
``ui-field-behaviour``); Airflow 2.11 to 3.1 ask the hook (``get_connection_form_widgets`` and
``get_ui_field_behaviour``). Both are generated from the dictionaries below so they cannot drift.
:class:`ConnectionSettings` is what a hook reads from the connection, once.

Airflow's provider discovery imports this module (``get_provider_info``), possibly while
:mod:`airflow_provider_vapi.exceptions` is still importing Airflow: it stays light, and imports
``httpx`` and the exceptions only when a hook reads its connection.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from airflow_provider_vapi.wire.retries import RetryPolicy

_DEFAULT_POLICY = RetryPolicy()
#: The extra holding the *public* API key (its name makes Airflow mask its value too).
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


DEFAULT_BASE_URL = "https://api.vapi.ai"
DEFAULT_TIMEOUT = 30.0
#: How long after it was sent a create that got no clear answer may still produce its call. Vapi
#: publishes no request time limit; its API sits behind a proxy that gives up on an origin after
#: 100 s, and 20 s more cover the write becoming visible in listings. See idempotency.create_op.
DEFAULT_CREATE_SETTLE = 120.0


@dataclass(frozen=True)
class ConnectionSettings:
    """What a hook needs from its Airflow connection, read once per hook."""

    conn_id: str
    base_url: str
    api_key: str = field(repr=False)
    timeout: float
    policy: RetryPolicy
    #: Seconds a create without a clear answer may still appear (extra ``create_settle_seconds``).
    create_settle: float = DEFAULT_CREATE_SETTLE
    #: The *public* API key (extra ``public_api_key``), for locked control URLs only (control.py).
    public_key: str | None = field(default=None, repr=False)

    @classmethod
    def from_connection(
        cls, conn: Any, conn_id: str, *, timeout: float | None = None, policy: RetryPolicy | None = None
    ) -> ConnectionSettings:
        """Parse an Airflow ``Connection`` (password = API key, host = base URL, extras = bounds)."""
        from airflow_provider_vapi.exceptions import VapiError  # not at import: see the module doc

        api_key = conn.password or ""
        if not api_key:
            raise VapiError(
                f"The Airflow connection {conn_id!r} has no API key. Put your Vapi *private* "
                "API key in its Password field (Admin -> Connections, or the password part of "
                "AIRFLOW_CONN_VAPI_DEFAULT)."
            )
        host = (conn.host or "").strip()
        if host and "://" not in host:
            schema = conn.schema or "https"
            host = f"{schema}://{host}" + (f":{conn.port}" if conn.port else "")
        elif host and conn.port and host.count(":") < 2:
            host = f"{host}:{conn.port}"
        extra = conn.extra_dejson or {}
        return cls(
            conn_id=conn_id,
            base_url=(host or DEFAULT_BASE_URL).rstrip("/"),
            api_key=api_key,
            timeout=float(timeout or extra.get("timeout") or DEFAULT_TIMEOUT),
            create_settle=float(extra.get("create_settle_seconds") or DEFAULT_CREATE_SETTLE),
            public_key=str(extra.get(PUBLIC_KEY_EXTRA) or "").strip() or None,
            policy=policy
            or RetryPolicy(
                max_attempts=int(extra.get("max_retries", 5)),
                max_delay=float(extra.get("retry_max_wait", 20.0)),
                max_total=float(extra.get("retry_total_seconds", 120.0)),
            ),
        )

    def client_kwargs(self) -> dict[str, Any]:
        """Arguments for ``httpx.Client`` / ``httpx.AsyncClient``."""
        import httpx

        return {
            "base_url": self.base_url,
            "headers": {"Authorization": f"Bearer {self.api_key}", "User-Agent": "airflow-provider-vapi"},
            "timeout": httpx.Timeout(self.timeout, connect=min(10.0, self.timeout)),
        }
