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
log; and, on disk, every task and component log. Each is grepped for each secret (either half of
its random part, so a truncated or split secret counts too). Then, so that nothing passes because
the data was simply missing: the rendered fields, logs and XComs hold the task's other values with
``***`` where the secrets were, and the emulator's fingerprints prove each secret reached Vapi.
"""

from __future__ import annotations

import importlib.util
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from airflow_provider_vapi.emulator.redaction import fingerprint

from .deployment import SYSTEM_DAGS, AirflowApi, AirflowDeployment, Emulator

REDACTED = "***"


def _fixture() -> ModuleType:
    """The DAG file's constants (ids, Variable names, numbers, its literal secret)."""
    spec = importlib.util.spec_from_file_location(
        "vapi_secrets_check_fixture", SYSTEM_DAGS / "vapi_secrets_check.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


DAG = _fixture()
DAG_ID: str = DAG.DAG_ID


@dataclass(frozen=True)
class Secret:
    label: str  # what the failure message names instead of the value
    value: str = field(repr=False)
    needles: tuple[str, ...] = field(repr=False)  # substrings any of which, found, is a leak


def _generated(kind: str, variable: str) -> Secret:
    core = uuid.uuid4().hex
    return Secret(f"{kind} (Variable {variable})", f"sekret-{kind}-{core}", (core[:16], core[16:]))


def _secrets(api_key: str) -> tuple[dict[str, Secret], list[Secret]]:
    """``({variable: secret})`` to set, and every secret to look for (those plus the fixed ones)."""
    by_var = {
        DAG.VAR_TWILIO: _generated("twilio", DAG.VAR_TWILIO),
        DAG.VAR_OCP: _generated("azure-apim", DAG.VAR_OCP),
        DAG.VAR_WEBHOOK: _generated("webhook", DAG.VAR_WEBHOOK),
        DAG.VAR_BATCH: _generated("batch-hook", DAG.VAR_BATCH),
    }
    literal = DAG.LITERAL_OPENAI_KEY
    core = literal.rsplit("-", 1)[1]
    fixed = [
        Secret("openAIKey (a literal in the DAG file)", literal, (core[:16], core[16:])),
        Secret("the connection's API key", api_key, (api_key,)),
    ]
    return by_var, [*by_var.values(), *fixed]


# -- what is stored after the run --------------------------------------------------------------


def _task_instance_places(api: AirflowApi, run_id: str, deployment_logs: Path) -> Iterator[tuple[str, str]]:
    """Each task instance as the API shows it (``rendered_fields`` included) and each try's log."""
    for ti in api.task_instances(DAG_ID, run_id):
        name = f"{ti['task_id']}[{ti['map_index']}]"
        full = api.task_instance(DAG_ID, run_id, ti["task_id"], ti["map_index"])
        assert "rendered_fields" in full, f"no rendered_fields on {name}"
        yield f"task instance {name} (rendered_fields: the Rendered tab)", json.dumps(full)
        for attempt in range(1, int(ti["try_number"]) + 1):
            log = api.task_log(DAG_ID, run_id, ti["task_id"], attempt, ti["map_index"])
            if log is None:  # the API lost the try; its file is searched with the others below
                on_disk = list((deployment_logs / f"dag_id={DAG_ID}").rglob(f"task_id={ti['task_id']}/*"))
                assert on_disk, f"no log of {name} try {attempt}, neither through the API nor on disk"
                continue
            yield f"log of {name} try {attempt} (REST API)", log


def _xcom_places(api: AirflowApi, run_id: str) -> Iterator[tuple[str, str]]:
    entries = api.xcom_entries(DAG_ID, run_id)
    yield "XCom entry list of the run", json.dumps(entries)
    for entry in entries:
        name = f"XCom {entry['task_id']}[{entry['map_index']}] {entry['key']}"
        yield f"{name} (as stored)", api.xcom_raw(DAG_ID, run_id, entry)
        yield f"{name} (deserialized)", api.xcom_raw(DAG_ID, run_id, entry, deserialize=True)


def _files(*paths: Path) -> Iterator[tuple[str, str]]:
    files = [f for p in paths if p.is_dir() for f in sorted(p.rglob("*")) if f.is_file()]
    files += [p for p in paths if p.is_file()]
    for path in files:
        yield f"file {path}", path.read_text(encoding="utf-8", errors="replace")


def _stored(
    api: AirflowApi, deployment: AirflowDeployment, emulator: Emulator, run_id: str
) -> list[tuple[str, str]]:
    places = [*_task_instance_places(api, run_id, deployment.home / "logs"), *_xcom_places(api, run_id)]
    places.append(("the emulator's request log", json.dumps(emulator.handle.request_log())))
    # The logs as stored: task, trigger and DAG-processor logs, and every component's output.
    places.extend(_files(deployment.home / "logs", deployment.logs))
    return places


def _excerpt(text: str, at: int, secrets: list[Secret]) -> str:
    """Some text around a leak, every secret in it replaced by its label (never printed)."""
    piece = text[max(at - 80, 0) : at + 80]
    for secret in secrets:
        for needle in (secret.value, *secret.needles):
            piece = piece.replace(needle, f"<{secret.label}>")
    return piece.replace("\n", " ")


def _leaks(places: list[tuple[str, str]], secrets: list[Secret]) -> list[tuple[Secret, str, str]]:
    """``(secret, place, excerpt)`` of every secret found in a place."""
    found = []
    for place, text in places:
        for secret in secrets:
            hits = [text.find(n) for n in secret.needles if n in text]
            if hits:
                found.append((secret, place, _excerpt(text, min(hits), secrets)))
    return found


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


def _check_logs(places: list[tuple[str, str]], call_ids: dict[str, str], home: Path) -> None:
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
    found = {secret.label for secret, _, _ in _leaks([("calls", calls)], secrets)}
    expected = {s.label for s in secrets if not s.label.startswith(("batch-hook", "the connection"))}
    assert found == expected, f"the grep found {sorted(found)} of {sorted(expected)}"


# -- the test ---------------------------------------------------------------------------------------


def _run(
    api: AirflowApi, deployment: AirflowDeployment, emulator: Emulator, by_var: dict[str, Secret]
) -> str:
    deployment.wait_for_dags([DAG_ID])
    for variable, secret in by_var.items():
        api.set_variable(variable, secret.value)
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

    places = _stored(api, deployment, emulator, run_id)
    leaks = _leaks(places, secrets)
    # The emulator's console (Vapi's side) announces the key it accepts; it must print no DAG secret.
    assert emulator.process is not None
    console = list(_files(Path(emulator.process.log_path)))
    leaks += _leaks(console, [s for s in secrets if s.value != emulator.api_key])
    tries = {f"{t['task_id']}": t["try_number"] for t in api.task_instances(DAG_ID, run_id)}
    print(f"\n[no-secrets] run took {ran:.1f} s (tries {tries}); searched {len(places)} stored places")
    report = [f"{secret.label} in {place}: ...{excerpt}..." for secret, place, excerpt in leaks]
    assert not leaks, f"{len(leaks)} secret leak(s):\n" + "\n".join(report)

    _check_rendered(api, run_id)
    _check_logs(places, call_ids, deployment.home)
    _check_xcoms(api, run_id, call_ids)
    _check_delivered(emulator, by_var)
    _check_grep_works(emulator, call_ids, secrets)
