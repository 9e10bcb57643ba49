"""The provider in Airflow's own UI, in a real browser: Debian's chromium driven by Playwright.

Proves: the "Vapi" connection type shows its own form (API key as a password field, base URL
with its placeholder, nothing that does not apply); a connection saved from that form passes the
UI's Test button against the emulator and fails it clearly with a wrong key; a finished survey
run shows the "Vapi call" extra link of its place_call task with that task's call id.
Screenshots go to ``test-results/system/`` (look at them: they must show what the test claims).

Nothing is downloaded: Playwright launches ``/usr/bin/chromium`` (``.ci/system-deps.sh`` installs
it); without it the test SKIPS with a loud reason.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .campaign import contacts, ensure_pool, start_survey
from .deployment import ADMIN_USER, AirflowApi, AirflowDeployment, Emulator

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SKIP_HINT = "run `sudo bash .ci/system-deps.sh` (Debian chromium + playwright into .venv)"


def _browser_missing() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return f"UI TEST SKIPPED: the Python package playwright is not installed; {SKIP_HINT}"
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        return f"UI TEST SKIPPED: {CHROMIUM} is missing; {SKIP_HINT}"
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    reason = _browser_missing()
    if reason:
        pytest.skip("!" * 10 + " " + reason + " " + "!" * 10)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        # A new empty profile each launch; every flag keeps chromium off the (closed) network.
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


def _fix_portless_test_request(route: Any) -> None:
    """Work around apache/airflow#73298 (fixed upstream after 3.3.2): the UI posts ``port: 0``
    for a connection without a port, and the API then answers 400 "The host or port to test
    differs from the stored connection" for EVERY portless connection type (``generic`` too).
    We send what the fix makes the API accept: no port. Nothing else of the request changes."""
    body = json.loads(route.request.post_data or "{}")
    if body.get("port") == 0:
        body["port"] = None
    route.continue_(post_data=json.dumps(body))


@pytest.fixture
def page(browser: Any, deployment: AirflowDeployment) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.route("**/api/v2/connections/test", _fix_portless_test_request)
    page.goto(f"{deployment.url}/")
    page.fill("input[name=username]", ADMIN_USER)
    page.fill("input[name=password]", deployment.password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{deployment.url}/")
    try:
        yield page
    finally:
        context.close()


def _add_vapi_connection(page: Any, conn_id: str, base_url: str, api_key: str, shot: Path | None) -> None:
    page.get_by_role("button", name="Add Connection").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Connection ID").fill(conn_id)
    dialog.get_by_role("combobox").fill("Vapi")
    page.get_by_role("option", name="Vapi", exact=True).click()

    # The form the provider's metadata asks for: relabelled fields, a password input, a placeholder,
    # and none of the fields a Vapi connection does not use.
    host = dialog.get_by_label("Base URL")
    key = dialog.get_by_label("API key (private)")
    assert host.get_attribute("placeholder") == "https://api.vapi.ai"
    assert key.get_attribute("type") == "password"
    for hidden in ("schema", "port", "login"):
        assert dialog.locator(f"input[name={hidden}]").count() == 0, f"{hidden} should be hidden"
    for label in ("Schema", "Port", "Login", "Host", "Password"):
        assert dialog.get_by_label(label, exact=True).count() == 0, f"field {label!r} should be hidden"
    host.fill(base_url)
    key.fill(api_key)
    if shot is not None:
        page.screenshot(path=str(shot))
    dialog.get_by_role("button", name="Save").click()
    dialog.wait_for(state="hidden")


def _close_tooltips(page: Any) -> None:
    """Close the tooltip the last click left open: Ark's tooltips open on hover *and on focus*, and
    the pressed button keeps the focus, so moving the pointer away is not enough. Blur it, park
    the pointer where nothing has a tooltip, and wait until none is open."""
    page.evaluate("() => document.activeElement && document.activeElement.blur()")
    page.mouse.move(1395, 995)
    page.wait_for_function(
        "() => !document.querySelector('[data-scope=tooltip][data-part=content][data-state=open]')"
    )


def _press_test(page: Any, conn_id: str) -> dict[str, Any]:
    """Press the row's Test button; returns the API's answer (what the toast shows)."""
    row = page.get_by_role("row").filter(has_text=conn_id)
    with page.expect_response("**/api/v2/connections/test") as answer:
        row.get_by_role("button", name="Test Connection").click()
    result: dict[str, Any] = answer.value.json()
    return result


def test_vapi_connection_form_and_test_button(
    page: Any, deployment: AirflowDeployment, api: AirflowApi, emulator: Emulator, results_dir: Path
) -> None:
    page.get_by_role("button", name="Admin").click()
    page.get_by_role("menuitem", name="Connections").click()
    page.wait_for_url("**/connections")

    _add_vapi_connection(
        page, "vapi_ui_ok", emulator.url, emulator.api_key, results_dir / "ui-connection-form.png"
    )
    _add_vapi_connection(page, "vapi_ui_wrong_key", emulator.url, "not-the-key", None)
    stored = api.get("/connections/vapi_ui_ok")
    assert stored["conn_type"] == "vapi" and stored["host"] == emulator.url
    assert stored["password"] == "***"  # saved, and never echoed back

    ok = _press_test(page, "vapi_ui_ok")
    assert ok == {"status": True, "message": f"Connected to Vapi at {emulator.url}."}, ok
    _close_tooltips(page)  # the button's tooltip (or one the pointer rests on) covers the next row
    bad = _press_test(page, "vapi_ui_wrong_key")
    assert bad["status"] is False
    assert "401" in bad["message"] and "Invalid Key" in bad["message"], bad
    assert "API key" in bad["message"], "the failure must say what to fix"
    page.get_by_text("Invalid Key", exact=False).first.wait_for()
    page.screenshot(path=str(results_dir / "ui-connection-test-wrong-key.png"))
    # The Test button really reached the emulator, with each connection's own key.
    lists = emulator.handle.requests("GET", "/assistant")
    assert {r["status"] for r in lists[-2:]} >= {200, 401}, lists[-4:]


def test_finished_survey_run_shows_the_vapi_call_link(
    page: Any, deployment: AirflowDeployment, api: AirflowApi, emulator: Emulator,
    system_workdir: Path, results_dir: Path,
) -> None:  # fmt: skip
    deployment.wait_for_dags(["vapi_outbound_survey"])
    ensure_pool(api)
    run = start_survey(api, system_workdir, "ui-link", contacts(40, 2))
    assert run.wait(180)["state"] == "success"
    call_id = api.xcom("vapi_outbound_survey", run.run_id, "place_call", map_index=1)

    page.goto(
        f"{deployment.url}/dags/vapi_outbound_survey/runs/{run.run_id}/tasks/place_call/mapped/1/details"
    )
    link = page.get_by_role("link", name="Vapi call")
    link.wait_for()
    href = link.get_attribute("href")
    assert href == f"https://dashboard.vapi.ai/calls/{call_id}", href
    assert emulator.handle.call(call_id)["customer"]["number"] == run.people[1].number
    page.screenshot(path=str(results_dir / "ui-vapi-call-extra-link.png"), full_page=True)
