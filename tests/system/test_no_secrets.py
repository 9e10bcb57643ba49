"""After a real run, no secret of the DAG is stored anywhere a user (or an attacker) can read it.

The DAG ``vapi_secrets_check`` (``tests/system/dags``, a test fixture) carries secrets where real
DAGs put them: a transient Twilio line's ``twilioAuthToken``, an inline assistant's Azure OpenAI
``credentials`` (``openAIKey`` written in the DAG file, ``ocpApimSubscriptionKey`` from a Variable),
a webhook ``Authorization`` header inside a ``payload`` given as JSON text, and a webhook secret on
a batch customer Vapi refuses (so it comes back in the batch's ``errors``). Each secret is a fresh
random string from an Airflow Variable (one Variable name Airflow masks on its own, three it does
not), never from the run's ``conf``; the connection's API key is the emulator's.

After the run, through the REST API: every task instance (with ``rendered_fields``: the Rendered
tab), every try's log, every XCom entry of the run (raw and deserialized); the emulator's request
log; on disk, every task and component log; and the metadata DB, row by row (``stored_places.py``:
the one grep of every stored place). Each is grepped for each secret (either half of its random
part, so a truncated or split secret counts too). Then, so that nothing passes because
the data was simply missing: the rendered fields, logs and XComs hold the task's other values with
``***`` where the secrets were, and the emulator's fingerprints prove each secret reached Vapi.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

from airflow_provider_vapi.emulator.redaction import fingerprint

from .deployment import AirflowApi, AirflowDeployment, Emulator, system_dag_module
from .stored_places import Place, Secret, emulator_stdout, leaks, report, secret, stored_places

REDACTED = "***"


DAG = system_dag_module("vapi_secrets_check.py")
DAG_ID: str = DAG.DAG_ID


def _generated(kind: str, variable: str) -> Secret:
    return secret(f"{kind} (Variable {variable})", f"sekret-{kind}-{uuid.uuid4().hex}")


def _secrets(api_key: str) -> tuple[dict[str, Secret], list[Secret]]:
    """``({variable: secret})`` to set, and every secret to look for (those plus the fixed ones)."""
    by_var = {
        DAG.VAR_TWILIO: _generated("twilio", DAG.VAR_TWILIO),
        DAG.VAR_OCP: _generated("azure-apim", DAG.VAR_OCP),
        DAG.VAR_WEBHOOK: _generated("webhook", DAG.VAR_WEBHOOK),
        DAG.VAR_BATCH: _generated("batch-hook", DAG.VAR_BATCH),
    }
    fixed = [
        secret("openAIKey (a literal in the DAG file)", DAG.LITERAL_OPENAI_KEY),
        Secret("the connection's API key", api_key, (api_key,)),
    ]
    return by_var, [*by_var.values(), *fixed]


# -- proof that the data is there -----------------------------------------------------------------


def _rendered(api: AirflowApi, run_id: str, task_id: str) -> str:
    return json.dumps(api.task_instance(DAG_ID, run_id, task_id)["rendered_fields"])


def _check_rendered(api: AirflowApi, run_id: str) -> None:
    twilio = _rendered(api, run_id, "twilio_line")
    assert DAG.TWILIO_LINE in twilio and DAG.TWILIO_CUSTOMER in twilio, twilio
    assert '"twilioAuthToken": "***"' in twilio, twilio
    inline = _rendered(api, run_id, "inline_assistant")
    for shown in (
        "example-resource.openai.azure.com",
        DAG.INLINE_CUSTOMER,
        "Hi {{name}}",
        "hooks.example.com",
    ):
        assert shown in inline, (shown, inline)
    assert '"openAIKey": "***"' in inline and '"ocpApimSubscriptionKey": "***"' in inline, inline
    assert "Authorization" in inline, inline
    batch = _rendered(api, run_id, "batch")
    assert DAG.BATCH_CUSTOMER in batch and "No line on file" in batch, batch


def _check_logs(places: list[Place], call_ids: dict[str, str], home: Path) -> None:
    logs = {p: t for p, t in places if p.startswith("log of ")}
    for task_id, call_id in call_ids.items():
        texts = [t for p, t in logs.items() if p.startswith(f"log of {task_id}[")]
        assert texts and any(call_id in t for t in texts), f"the log of {task_id} does not name its call"
    on_disk = [t for p, t in places if p.startswith(f"file {home / 'logs'}")]
    assert any(call_ids["twilio_line"] in t for t in on_disk), "no task log on disk names the call"
    batch = "".join(t for p, t in logs.items() if p.startswith("log of batch["))
    assert "refused 1 of 2 customers" in batch, batch[-3000:]


def _check_xcoms(api: AirflowApi, run_id: str, call_ids: dict[str, str]) -> None:
    waited = api.xcom(DAG_ID, run_id, "wait_twilio_line")
    assert waited["id"] == call_ids["twilio_line"] and waited["outcome"] == "completed", waited
    assert waited["phoneNumber"]["twilioPhoneNumber"] == DAG.TWILIO_LINE, waited.get("phoneNumber")
    assert waited["phoneNumber"]["twilioAuthToken"] == REDACTED, waited["phoneNumber"]
    inline = api.xcom(DAG_ID, run_id, "inline_assistant")
    assert inline["id"] == call_ids["inline_assistant"] and inline["outcome"] == "completed", inline
    credential = inline["assistant"]["credentials"][0]
    assert credential["openAIEndpoint"] == "https://example-resource.openai.azure.com", credential
    assert credential["openAIKey"] == credential["ocpApimSubscriptionKey"] == REDACTED, credential
    assert inline["assistantOverrides"]["server"]["headers"]["Authorization"] == REDACTED, inline
    batch = api.xcom(DAG_ID, run_id, "batch")
    assert batch["call_ids"] == [call_ids["batch"]], batch
    (refused,) = batch["errors"]
    assert refused["customer"]["name"] == "No line on file" and "sipUri" in refused["error"], refused
    headers = refused["customer"]["assistantOverrides"]["server"]["headers"]
    assert headers == {"X-Vapi-Secret": REDACTED}, headers


def _create(emulator: Emulator, number: str) -> dict[str, Any]:
    """The one ``POST /call`` the emulator logged for a customer number of this DAG."""
    found = [
        r
        for r in emulator.handle.requests("POST", "/call")
        if number in json.dumps([r["body"].get("customer"), r["body"].get("customers")])
    ]
    assert len(found) == 1, f"{len(found)} creates for {number}"
    return found[0]


def _check_delivered(emulator: Emulator, by_var: dict[str, Secret]) -> None:
    """Vapi (the emulator) received every secret: its log keeps their fingerprints."""
    expected = {
        DAG.TWILIO_CUSTOMER: {"phoneNumber.twilioAuthToken": by_var[DAG.VAR_TWILIO].value},
        DAG.INLINE_CUSTOMER: {
            "assistant.credentials.0.openAIKey": DAG.LITERAL_OPENAI_KEY,
            "assistant.credentials.0.ocpApimSubscriptionKey": by_var[DAG.VAR_OCP].value,
            "assistantOverrides.server.headers.Authorization": f"Bearer {by_var[DAG.VAR_WEBHOOK].value}",
        },
        DAG.BATCH_CUSTOMER: {
            "customers.1.assistantOverrides.server.headers.X-Vapi-Secret": by_var[DAG.VAR_BATCH].value
        },
    }
    for number, secrets in expected.items():
        got = _create(emulator, number)["fingerprints"]
        assert got == {path: fingerprint(value) for path, value in secrets.items()}, (number, got)


def _check_grep_works(emulator: Emulator, call_ids: dict[str, str], secrets: list[Secret]) -> None:
    """A control: the same grep finds the secrets in the emulator's own call records (Vapi's state,
    which keeps what it was sent), so a clean result above is not a grep that finds nothing."""
    calls = json.dumps([emulator.handle.call(call_ids[t]) for t in ("twilio_line", "inline_assistant")])
    found = {leak.secret.label for leak in leaks([("calls", calls)], secrets)}
    expected = {s.label for s in secrets if not s.label.startswith(("batch-hook", "the connection"))}
    assert found == expected, f"the grep found {sorted(found)} of {sorted(expected)}"


# -- the test ---------------------------------------------------------------------------------------


def _run(
    api: AirflowApi, deployment: AirflowDeployment, emulator: Emulator, by_var: dict[str, Secret]
) -> str:
    deployment.wait_for_dags([DAG_ID])
    for variable, value in by_var.items():
        api.set_variable(variable, value.value)
    # Calls of a few seconds, not a fraction of one: a trigger that fires before the scheduler has
    # seen the deferring process exit trips an Airflow race (see the DAG's docstring).
    emulator.handle.configure(speed=2)
    run_id = api.trigger(DAG_ID, {})
    run = api.wait_for_run(DAG_ID, run_id, 300)
    states = api.states(DAG_ID, run_id)
    assert run["state"] == "success" and set(states.values()) == {"success"}, states
    return run_id


def test_no_secret_is_stored_after_a_real_run(
    deployment: AirflowDeployment, api: AirflowApi, emulator: Emulator
) -> None:
    by_var, secrets = _secrets(emulator.api_key)
    started = time.monotonic()
    run_id = _run(api, deployment, emulator, by_var)
    ran = time.monotonic() - started
    call_ids = {t: api.xcom(DAG_ID, run_id, t, key="call_id") for t in ("twilio_line", "inline_assistant")}
    call_ids["batch"] = api.xcom(DAG_ID, run_id, "batch", key="call_id")[0]

    places = stored_places(api, deployment, emulator, DAG_ID, run_id)
    found = leaks(places, secrets)
    # The emulator's console (Vapi's side) announces the key it accepts; it must print no DAG secret.
    found += leaks(emulator_stdout(emulator), [s for s in secrets if s.value != emulator.api_key])
    tries = {f"{t['task_id']}": t["try_number"] for t in api.task_instances(DAG_ID, run_id)}
    print(f"\n[no-secrets] run took {ran:.1f} s (tries {tries}); searched {len(places)} stored places")
    assert not found, report(found)

    _check_rendered(api, run_id)
    _check_logs(places, call_ids, deployment.home)
    _check_xcoms(api, run_id, call_ids)
    _check_delivered(emulator, by_var)
    _check_grep_works(emulator, call_ids, secrets)
