"""A canary under every credential-shaped key, through place, wait, a mapped task, a campaign,
export and load on a real Airflow: afterwards no canary is stored anywhere.

The DAG ``vapi_secret_canaries`` (``tests/system/dags``, a test fixture) puts a distinct canary
under each key of ``airflow_provider_vapi.secrets.SPEC_SECRET_KEYS`` (where Vapi's schemas put
it: the credential entries of an inline assistant, a transient Twilio line, a Twilio transport; the
few keys no call schema has go into ``metadata``) and under a key of each suffix rule (webhook
headers, ``metadata``), in an unmapped task, a mapped one (``partial(...).expand_kwargs(...)``: its
headers rendered on Airflow's mapped path, its ``metadata`` mapped literals) and a campaign's
``assistant_overrides``; the test checks first that the DAG covers every key and rule. Canaries
are fresh random values of the Variable ``vapi_canaries`` (neutral names: Airflow masks none of
them itself), except a few literals of the DAG file.

After the run, everything stored (``stored_places.py``) is grepped for every canary: the REST
API's task instances (Rendered tab), logs and XComs; every file under the logs folder and the
components' output; the metadata DB row by row (``trigger`` kwargs decrypted, read while live); the
export files; the warehouse database; the emulator's request log and stdout. So that nothing
passes on missing data: each canary reached Vapi (the request log's fingerprints, or the canary
itself when the log kept it), and the places hold the tasks' other values with ``***`` where the
canaries were. One failure lists every leak (canary label and place, never the value) and every
missing proof.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

from airflow_provider_vapi.emulator.redaction import fingerprint
from airflow_provider_vapi.secrets import _SECRET_SUFFIXES, SPEC_SECRET_KEYS, is_secret_key

from .airflow_api import AirflowApi
from .deployment import AirflowDeployment, Emulator, system_dag_module
from .stored_places import (
    Place,
    Secret,
    TriggerSampler,
    database_places,
    emulator_stdout,
    file_places,
    hide,
    leaks,
    report,
    secret,
    stored_places,
)

REDACTED = "***"


DAG = system_dag_module("vapi_secret_canaries.py")
DAG_ID: str = DAG.DAG_ID
CANARIES: list[Any] = list(DAG.CANARIES.values())


def _normalised(key: str) -> str:
    return "".join(ch for ch in key.lower() if ch.isalnum())


# -- the canaries ---------------------------------------------------------------------------------------


def _fresh_values() -> dict[str, str]:
    """The Variable's value: a fresh random canary for each code the DAG reads from it."""
    return {c.code: f"{c.code}-canary-{uuid.uuid4().hex}" for c in CANARIES if c.literal is None}


def _value(canary: Any, values: dict[str, str]) -> str:
    return str(canary.literal if canary.literal is not None else values[canary.code])


def _secrets(values: dict[str, str]) -> list[Secret]:
    def label(c: Any) -> str:
        origin = "literal in the DAG file" if c.literal is not None else f"Variable {DAG.VARIABLE}"
        return f"{c.code} {c.task_id}: {c.path} ({origin})"

    return [secret(label(c), _value(c, values)) for c in CANARIES]


def test_the_canaries_cover_every_credential_shaped_key() -> None:
    """Every key of the spec's list and every suffix rule has a canary the provider calls secret
    (a key the spec adds to ``SPEC_SECRET_KEYS`` fails this until the DAG places it)."""
    keys = {_normalised(c.key) for c in CANARIES}
    assert not SPEC_SECRET_KEYS - keys, f"keys without a canary: {sorted(SPEC_SECRET_KEYS - keys)}"
    suffix_keys = keys - SPEC_SECRET_KEYS
    bare = [s for s in _SECRET_SUFFIXES if not any(k.endswith(s) for k in suffix_keys)]
    assert not bare, f"suffix rules without a canary (under a key not in the spec's list): {bare}"
    unknown = [c.path for c in CANARIES if not is_secret_key(c.key, in_credentials="credentials" in c.path)]
    assert not unknown, f"canaries under keys the provider does not call secret: {unknown}"
    assert len({c.literal for c in CANARIES if c.literal}) == sum(1 for c in CANARIES if c.literal)


# -- the run --------------------------------------------------------------------------------------------


def _run(
    api: AirflowApi, deployment: AirflowDeployment, emulator: Emulator, values: dict[str, str]
) -> tuple[str, dict[str, Any], TriggerSampler]:
    """Trigger the DAG and wait for its end, reading the live triggers meanwhile."""
    deployment.wait_for_dags([DAG_ID])
    api.set_variable(DAG.VARIABLE, json.dumps(values))
    # Calls of a few seconds (see the fixture's docstring: a trigger firing at once trips a race).
    emulator.handle.configure(speed=2)
    run_id = api.trigger(DAG_ID, {})
    sampler = TriggerSampler(deployment)
    run = sampler.wait_for_run(api, DAG_ID, run_id, 300)
    return run_id, run, sampler


def _places(
    api: AirflowApi, deployment: AirflowDeployment, emulator: Emulator, run_id: str, sampler: TriggerSampler
) -> list[Place]:
    places = stored_places(api, deployment, emulator, DAG_ID, run_id)
    places += sampler.places()
    places += file_places(deployment.home / DAG.EXPORT_FOLDER)
    places += database_places("warehouse", f"sqlite:///{deployment.home / 'warehouse.db'}")
    places += emulator_stdout(emulator)
    return places


# -- proof that the grep had something to find -------------------------------------------------------


def _undelivered(emulator: Emulator, values: dict[str, str]) -> list[str]:
    """Canaries that never reached Vapi: neither a fingerprint in the request log nor the canary."""
    creates = [r for r in emulator.handle.requests("POST") if r["path"] in ("/call", "/v2/campaign")]
    fingerprints = {fp for r in creates for fp in (r.get("fingerprints") or {}).values()}
    bodies = json.dumps([r["body"] for r in creates])
    missing = []
    for c, s in zip(CANARIES, _secrets(values), strict=True):
        sent = c.prefix + s.value
        if fingerprint(sent) not in fingerprints and not any(n in bodies for n in s.needles):
            missing.append(f"{s.label} never reached the emulator (no fingerprint, not in any body)")
    return missing


def _expected_masks(task_id: str, map_index: int) -> int:
    """How many canaries the task instance's rendered fields hold."""
    if task_id != "mapped_place":
        return sum(1 for c in CANARIES if c.task_id == task_id)
    mine = ("partial.", f"expand[{map_index}].")
    return sum(1 for c in CANARIES if c.task_id == task_id and c.path.startswith(mine))


def _check_rendered(api: AirflowApi, run_id: str) -> list[str]:
    """The Rendered tab shows each task's values, with ``***`` for each of its canaries."""
    shown = {
        ("place", -1): DAG.PLACE_CUSTOMER,
        ("mapped_place", 0): DAG.MAPPED_CUSTOMERS[0],
        ("mapped_place", 1): DAG.MAPPED_CUSTOMERS[1],
        ("campaign", -1): DAG.CAMPAIGN_CUSTOMERS[0],
    }
    problems = []
    for (task_id, index), number in shown.items():
        rendered = json.dumps(api.task_instance(DAG_ID, run_id, task_id, index)["rendered_fields"])
        expected = _expected_masks(task_id, index)
        if number not in rendered or rendered.count(f'"{REDACTED}') < expected:
            problems.append(
                f"rendered fields of {task_id}[{index}]: customer {number} shown: {number in rendered}; "
                f"{rendered.count(REDACTED)} {REDACTED} for {expected} canaries"
            )
    return problems


def _check_xcoms(api: AirflowApi, run_id: str) -> tuple[list[str], dict[str, str]]:
    """The calls' XComs hold the calls, secrets as ``***``; returns ``{what: call id}`` too."""
    ids = {"place": api.xcom(DAG_ID, run_id, "place")}
    for i in (0, 1):
        ids[f"mapped_place[{i}]"] = api.xcom(DAG_ID, run_id, "mapped_place", key="call_id", map_index=i)
    problems = []
    waited = api.xcom(DAG_ID, run_id, "wait")
    credentials = (waited.get("assistant") or {}).get("credentials") or []
    if waited.get("id") != ids["place"] or len(credentials) != 12:
        problems.append(f"XCom of wait: call {waited.get('id')}, {len(credentials)} credentials")
    elif (
        credentials[1].get("openAIKey") != REDACTED
        or waited["phoneNumber"].get("twilioAuthToken") != REDACTED
    ):
        problems.append("XCom of wait: the echoed openAIKey or twilioAuthToken is not ***")
    for i in (0, 1):
        result = api.xcom(DAG_ID, run_id, "mapped_place", map_index=i)
        headers = ((result.get("assistantOverrides") or {}).get("server") or {}).get("headers") or {}
        if result.get("id") != ids[f"mapped_place[{i}]"] or set(headers.values()) != {REDACTED}:
            shown = {k: v == REDACTED for k, v in headers.items()}
            problems.append(f"XCom of mapped_place[{i}]: call {result.get('id')}, headers redacted: {shown}")
    return problems, ids


def _check_logs(deployment: AirflowDeployment, run_id: str, ids: dict[str, str]) -> list[str]:
    """Every task instance has a log file on disk; the calls' logs name their calls."""
    folder = deployment.home / "logs" / f"dag_id={DAG_ID}" / f"run_id={run_id}"
    texts = {p.relative_to(folder).as_posix(): p.read_text(errors="replace") for p in folder.rglob("*.log")}
    problems = []
    for task_id in ("place", "wait", "mapped_place", "campaign", "export", "load"):
        if not any(name.startswith(f"task_id={task_id}/") for name in texts):
            problems.append(f"no log file of {task_id} under {folder}")
    for what, call_id in ids.items():
        task_id = what.split("[")[0]
        if not any(call_id in t for n, t in texts.items() if n.startswith(f"task_id={task_id}/")):
            problems.append(f"no log file of {what} names its call {call_id}")
    return problems


def _check_export_and_warehouse(
    api: AirflowApi, places: list[Place], run_id: str, ids: dict[str, str]
) -> list[str]:
    """The export file holds the run's calls (the campaign's too), ``***`` where secrets were; the
    warehouse holds the place call's row, its ``metadata`` with ``***`` for ``password``."""
    exported = api.xcom(DAG_ID, run_id, "export")
    path = Path(exported["path"])
    text = path.read_text() if path.is_file() else ""
    campaign_id = api.xcom(DAG_ID, run_id, "campaign", key="campaign_id")
    problems = [f"export {path}: no call {i} ({w})" for w, i in ids.items() if i not in text]
    calls = [json.loads(line) for line in text.splitlines() if line.strip()]
    if not any(call.get("campaignId") == campaign_id for call in calls):
        problems.append(f"export {path}: no call of campaign {campaign_id}")
    if REDACTED not in text:
        problems.append(f"export {path}: no {REDACTED} in it")
    row = f"warehouse {DAG.WAREHOUSE_TABLE}.metadata [id={ids['place']}]"
    metadata = [json.loads(t) for p, t in places if p == row]
    if not metadata or metadata[0].get("password") != REDACTED:
        shown = {k: v == REDACTED for k, v in metadata[0].items()} if metadata else None
        problems.append(f"warehouse {DAG.WAREHOUSE_TABLE}: the place call's metadata, redacted: {shown}")
    return problems


def _check_metadata_db(places: list[Place], run_id: str, sampler: TriggerSampler) -> list[str]:
    """The metadata DB was read: the run's rendered fields and XComs are among the places, and
    at least one trigger was caught live."""
    problems = []
    for table in ("rendered_task_instance_fields", "xcom"):
        if not any(p.startswith(f"metadata DB {table}.") and f"run_id={run_id}" in p for p, _ in places):
            problems.append(f"no row of the run in the metadata DB's {table}")
    if not sampler.seen:
        problems.append("no trigger was caught live in the metadata DB")
    return problems


# -- the test ---------------------------------------------------------------------------------------------


def test_no_canary_is_stored_anywhere(
    deployment: AirflowDeployment, api: AirflowApi, emulator: Emulator
) -> None:
    values = _fresh_values()
    secrets = _secrets(values)
    started = time.monotonic()
    run_id, run, sampler = _run(api, deployment, emulator, values)
    ran = time.monotonic() - started
    places = _places(api, deployment, emulator, run_id, sampler)
    found = leaks(places, secrets)
    problems = _undelivered(emulator, values)
    if run["state"] != "success":
        problems.append(f"the run ended {run['state']}: {api.states(DAG_ID, run_id)}")
    else:
        xcom_problems, ids = _check_xcoms(api, run_id)
        problems += _check_rendered(api, run_id) + xcom_problems + _check_logs(deployment, run_id, ids)
        problems += _check_export_and_warehouse(api, places, run_id, ids)
        problems += _check_metadata_db(places, run_id, sampler)
    print(
        f"\n[canaries] run took {ran:.1f} s; {len(secrets)} canaries; searched {len(places)} stored places "
        f"({len(sampler.seen)} triggers caught live); {len(found)} leaks, {len(problems)} missing proofs"
    )
    message = [report(found)] if found else []
    if problems:
        message.append(
            f"{len(problems)} missing proof(s) that the grep had something to find:\n" + "\n".join(problems)
        )
    failure = hide("\n\n".join(message), secrets)  # a report names canaries, never shows one
    assert not failure, failure
