"""Apache Airflow provider for Vapi voice-AI phone calls.

Kept import-light on purpose: Airflow reads ``get_provider_info`` without importing hooks, and the
bundled emulator (``airflow_provider_vapi.emulator``) must start without importing Airflow at all.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from airflow_provider_vapi.exceptions import VapiError

__all__ = ["VapiError", "__version__", "get_provider_info"]


def __getattr__(name: str) -> Any:
    if name == "VapiError":
        from airflow_provider_vapi.exceptions import VapiError

        return VapiError
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_OPERATOR_MODULES = (
    "airflow_provider_vapi.operators",
    "airflow_provider_vapi.structured_outputs",
    "airflow_provider_vapi.call_export",
    "airflow_provider_vapi.warehouse",
    "airflow_provider_vapi.campaigns.operator",
    "airflow_provider_vapi.campaigns.contacts",
)
_SENSOR_MODULES = ("airflow_provider_vapi.sensors", "airflow_provider_vapi.campaigns.sensor")
_TRIGGER_MODULES = (
    "airflow_provider_vapi.triggers",
    "airflow_provider_vapi.campaigns.trigger",
    "airflow_provider_vapi.call_events.trigger",
)


def get_provider_info() -> dict[str, Any]:
    """Provider metadata read by Airflow through the ``apache_airflow_provider`` entry point."""
    from airflow_provider_vapi.connection_form import CONN_FIELDS, provider_ui_field_behaviour

    return {
        "package-name": "airflow-provider-vapi",
        "name": "Vapi",
        "description": "Vapi voice-AI phone calls: place calls, wait for them, land what they learned in your storage.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "Vapi",
                "external-doc-url": "https://docs.vapi.ai",
                "tags": ["service"],
            }
        ],
        "hooks": [{"integration-name": "Vapi", "python-modules": ["airflow_provider_vapi.hooks"]}],
        "operators": [{"integration-name": "Vapi", "python-modules": list(_OPERATOR_MODULES)}],
        "sensors": [{"integration-name": "Vapi", "python-modules": list(_SENSOR_MODULES)}],
        "triggers": [{"integration-name": "Vapi", "python-modules": list(_TRIGGER_MODULES)}],
        "extra-links": [
            "airflow_provider_vapi.links.VapiCallLink",
            "airflow_provider_vapi.links.VapiCampaignLink",
        ],
        "connection-types": [
            {
                "hook-class-name": "airflow_provider_vapi.hooks.VapiHook",
                "hook-name": "Vapi",
                "connection-type": "vapi",
                "conn-fields": CONN_FIELDS,
                "ui-field-behaviour": provider_ui_field_behaviour(),
            }
        ],
    }
