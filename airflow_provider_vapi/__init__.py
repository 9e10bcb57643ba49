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


#: The public faces: each re-exports what lives in its feature package (``ARCHITECTURE.md``).
_OPERATOR_MODULES = ("airflow_provider_vapi.operators",)
_SENSOR_MODULES = ("airflow_provider_vapi.sensors",)
_TRIGGER_MODULES = ("airflow_provider_vapi.triggers",)


def get_provider_info() -> dict[str, Any]:
    """Provider metadata read by Airflow through the ``apache_airflow_provider`` entry point."""
    from airflow_provider_vapi.wire.connection import CONN_FIELDS, provider_ui_field_behaviour

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
            "airflow_provider_vapi.hook.links.VapiCallLink",
            "airflow_provider_vapi.hook.links.VapiCampaignLink",
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
