"""Registration: Airflow finds the provider, its connection form, and can test a connection."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_vapi import get_provider_info
from airflow_provider_vapi.hooks import VapiHook
from airflow_provider_vapi.wire.connection import CONN_FIELDS, UI_FIELD_BEHAVIOUR
from tests.conftest import vapi_conn_json


def test_every_registered_module_and_class_exists() -> None:
    info = get_provider_info()
    for kind in ("hooks", "operators", "sensors", "triggers"):
        for entry in info[kind]:
            for module in entry["python-modules"]:
                importlib.import_module(module)
    for path in [*info["extra-links"], *(c["hook-class-name"] for c in info["connection-types"])]:
        module, _, name = path.rpartition(".")
        assert hasattr(importlib.import_module(module), name), path


def test_provider_metadata_and_legacy_hook_methods_agree() -> None:
    """Airflow 3.2+ reads the metadata, 2.11 to 3.1 the hook: both must describe one form."""
    (conn_type,) = get_provider_info()["connection-types"]
    assert conn_type["connection-type"] == VapiHook.conn_type == "vapi"
    assert conn_type["hook-name"] == VapiHook.hook_name
    behaviour = conn_type["ui-field-behaviour"]
    legacy = VapiHook.get_ui_field_behaviour()
    assert behaviour["hidden-fields"] == legacy["hidden_fields"]
    assert behaviour["relabeling"] == legacy["relabeling"]
    assert behaviour["placeholders"] == legacy["placeholders"]
    assert conn_type["conn-fields"] == CONN_FIELDS
    assert "password" not in legacy["hidden_fields"] and "host" not in legacy["hidden_fields"]
    assert set(UI_FIELD_BEHAVIOUR["placeholders"]) - {"host", "password"} <= set(CONN_FIELDS)
    widgets = VapiHook.get_connection_form_widgets()
    if widgets:  # WTForms exists only on Airflow < 3.2
        assert set(widgets) == set(CONN_FIELDS)


def test_providers_manager_sees_hook_form_trigger_and_link() -> None:
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    assert manager.providers["airflow-provider-vapi"].version == "0.1.0"
    hook = manager.hooks["vapi"]
    assert hook is not None and hook.hook_class_name == "airflow_provider_vapi.hooks.VapiHook"
    assert hook.connection_id_attribute_name == "vapi_conn_id"
    assert "airflow_provider_vapi.hook.links.VapiCallLink" in manager.extra_links_class_names
    assert "airflow_provider_vapi.hook.links.VapiCampaignLink" in manager.extra_links_class_names
    triggers = {t.trigger_class_name for t in manager.trigger}
    assert "airflow_provider_vapi.triggers" in triggers  # the face: every trigger is importable there
    behaviour = manager.field_behaviours["vapi"]
    assert behaviour["relabeling"]["password"] == "API key (private)"
    widgets = {name for name in manager.connection_form_widgets if name.startswith("extra__vapi__")}
    assert widgets == {f"extra__vapi__{name}" for name in CONN_FIELDS}


def _airflow_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    airflow = Path(sys.executable).with_name("airflow")
    return subprocess.run([str(airflow), *args], env=env, capture_output=True, text=True, timeout=180)


def test_airflow_connections_test_cli(vapi_emulator: Any) -> None:
    """The real client the UI's Test button shares: `airflow connections test`."""
    env = {**os.environ, "AIRFLOW__CORE__TEST_CONNECTION": "Enabled"}
    env["AIRFLOW_CONN_VAPI_DEFAULT"] = vapi_conn_json(vapi_emulator.url, vapi_emulator.api_key)
    env["AIRFLOW_CONN_VAPI_WRONG"] = vapi_conn_json(vapi_emulator.url, "not-the-key")
    good = _airflow_cli("connections", "test", "vapi_default", env=env)
    assert "Connection success!" in good.stdout, good.stdout + good.stderr
    bad = _airflow_cli("connections", "test", "vapi_wrong", env=env)
    assert "Connection failed!" in bad.stdout and "Invalid Key" in bad.stdout, bad.stdout + bad.stderr
    assert "not-the-key" not in bad.stdout + bad.stderr
    assert vapi_emulator.requests(method="GET", path="/assistant"), "the test must ask Vapi"


@pytest.mark.parametrize(
    ("uri", "base_url"),
    [
        ("vapi://:sk-123@api.vapi.ai", "https://api.vapi.ai"),
        ("vapi://:sk-123@127.0.0.1:8787?__extra__=%7B%7D", "https://127.0.0.1:8787"),
        ("vapi://:sk-123@", "https://api.vapi.ai"),
    ],
)
def test_connection_from_uri(monkeypatch: pytest.MonkeyPatch, uri: str, base_url: str) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_VAPI_DEFAULT", uri)
    assert VapiHook().base_url == base_url


def test_connection_from_json_with_a_scheme(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_VAPI_DEFAULT", vapi_conn_json("http://127.0.0.1:8787/", "k", timeout=3))
    assert VapiHook().base_url == "http://127.0.0.1:8787"


def test_airflow_providers_cli_lists_the_provider_and_its_hook() -> None:
    env = dict(os.environ)
    listed = _airflow_cli("providers", "list", "-o", "json", env=env)
    assert '"airflow-provider-vapi"' in listed.stdout, listed.stdout[-2000:] + listed.stderr[-2000:]
    hooks = _airflow_cli("providers", "hooks", "-o", "json", env=env)
    assert "airflow_provider_vapi.hooks.VapiHook" in hooks.stdout, hooks.stderr[-2000:]
