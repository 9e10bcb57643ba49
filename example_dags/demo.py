"""``make demo``: an outbound survey campaign, end to end, with no Vapi account and no network.

1. starts the bundled Vapi emulator in a subprocess on a free loopback port (fast clock);
2. prepares a throw-away Airflow home in ``.demo/`` (SQLite metadata DB, the ``vapi`` pool, the
   ``vapi_default`` connection pointing at the emulator);
3. runs the ``vapi_outbound_survey`` DAG with ``dag.test()`` (the deferrable sensors' triggers run
   inline), writing one row per call into ``.demo/vapi_call_results.db``;
4. prints the calls and what each one learned, checks them against the emulator's script, and
   stops the emulator.

Exit status 0 only when every step worked. Task logs go to ``.demo/dag_test.log``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = Path(__file__).resolve().parent
DEMO_DIR = Path(os.environ.get("VAPI_DEMO_DIR") or ROOT / ".demo").resolve()
HOME = DEMO_DIR / "airflow-home"
RESULTS_DB = DEMO_DIR / "vapi_call_results.db"
TASK_LOG = DEMO_DIR / "dag_test.log"
DAG_ID = "vapi_outbound_survey"
EMULATOR_SPEED = 25.0


class DemoError(Exception):
    """A step failed; the message says which and why."""


def _rel(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


class Steps:
    """Numbered progress lines with timings."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.done = 0
        self.started = time.monotonic()

    @contextlib.contextmanager
    def step(self, title: str) -> Iterator[list[str]]:
        self.done += 1
        began = time.monotonic()
        print(f"[{self.done}/{self.total}] {title} ...", end="", flush=True)
        detail: list[str] = []
        try:
            yield detail
        except BaseException:
            print(" FAILED", flush=True)
            raise
        extra = f" {detail[0]}" if detail else ""
        print(f" ok ({time.monotonic() - began:.1f}s){extra}", flush=True)


@contextlib.contextmanager
def _output_to(path: Path) -> Iterator[None]:
    """Send this process's stdout/stderr (Airflow's task logs included) to a file for a while."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(path, "a", encoding="utf-8") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def _prepare_environment(emulator_url: str, api_key: str) -> None:
    """Everything Airflow reads at import: must run before the first ``import airflow``."""
    if "airflow" in sys.modules:
        raise DemoError("Airflow was imported before the demo could configure it")
    os.environ.update(
        {
            "AIRFLOW_HOME": str(HOME),
            "AIRFLOW__CORE__DAGS_FOLDER": str(EXAMPLES),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{HOME / 'airflow.db'}",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            "VAPI_EXAMPLES_POLL_INTERVAL": "0.2",
            "AIRFLOW_CONN_VAPI_DEFAULT": json.dumps(
                {
                    "conn_type": "vapi",
                    "host": emulator_url,
                    "password": api_key,
                    "extra": {"timeout": 5, "retry_max_wait": 0.5},
                }
            ),
        }
    )


def _airflow_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("apache-airflow")
    except PackageNotFoundError:
        return version("apache-airflow-core")


def _cached_metadata_db() -> Path:
    """Where a freshly migrated metadata DB of this Airflow version is kept between demo runs."""
    return DEMO_DIR / "cache" / f"airflow-{_airflow_version()}-metadata.db"


def _migrate() -> str:
    """Create the metadata DB: ``airflow db migrate`` once per Airflow version, then a file copy."""
    target = HOME / "airflow.db"
    cached = _cached_metadata_db()
    if cached.exists():
        return "copied"
    from airflow.utils.db import upgradedb

    upgradedb()
    cached.parent.mkdir(parents=True, exist_ok=True)
    partial = cached.with_suffix(".partial")
    partial.unlink(missing_ok=True)
    _copy_sqlite(target, partial)
    partial.replace(cached)
    return "migrated"


def _copy_sqlite(source: Path, target: Path) -> None:
    """A consistent copy even in WAL mode (a plain file copy would miss the ``-wal`` pages)."""
    import sqlite3

    with (
        contextlib.closing(sqlite3.connect(source)) as src,
        contextlib.closing(sqlite3.connect(target)) as dst,
    ):
        src.backup(dst)


def _create_pool() -> None:
    from airflow.models.pool import Pool
    from vapi_example_support import VAPI_CONCURRENCY_LIMIT, VAPI_POOL

    Pool.create_or_update_pool(
        VAPI_POOL, VAPI_CONCURRENCY_LIMIT, "Vapi: simultaneous calls per account", include_deferred=False
    )


def dag_bag(folder: Path) -> Any:
    """A DagBag of ``folder`` alone, on Airflow 3 (``airflow.dag_processing``) and 2.11."""
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow 2
        from airflow.models.dagbag import DagBag

        return DagBag(dag_folder=str(folder), include_examples=False)
    return DagBag(dag_folder=str(folder))


def _load_dag() -> tuple[Any, int]:
    bag = dag_bag(EXAMPLES)
    if bag.import_errors:
        errors = "\n".join(f"{path}: {err}" for path, err in bag.import_errors.items())
        raise DemoError(f"example DAGs failed to import:\n{errors}")
    if DAG_ID not in bag.dags:
        raise DemoError(f"DAG {DAG_ID} not found in {EXAMPLES}")
    return bag.dags[DAG_ID], len(bag.dags)


def _run(dag: Any) -> tuple[Any, list[Any]]:
    with _output_to(TASK_LOG):
        dag_run = dag.test(run_conf={"results_db": f"sqlite:///{RESULTS_DB}"})
    tis = list(dag_run.get_task_instances())
    failed = [f"{ti.task_id}[{ti.map_index}]={ti.state}" for ti in tis if ti.state != "success"]
    if dag_run.state != "success" or failed:
        raise DemoError(
            f"the DAG run ended {dag_run.state}; not successful: {', '.join(failed) or 'none'}. "
            f"Task logs: {_rel(TASK_LOG)}"
        )
    return dag_run, tis


def _expected_outcomes() -> dict[str, str]:
    """person_id -> the outcome the emulator is scripted to produce for that person's number."""
    import csv

    from airflow_provider_vapi.emulator.outcomes import outcome_for
    from airflow_provider_vapi.models import classify_ended_reason

    with open(EXAMPLES / "data" / "survey_contacts.csv", newline="", encoding="utf-8") as handle:
        return {
            row["person_id"]: classify_ended_reason(outcome_for(row["number"]).ended_reason).value
            for row in csv.DictReader(handle)
        }


def _check(rows: list[dict[str, Any]]) -> None:
    expected = _expected_outcomes()
    got = {row["person_id"]: row["outcome"] for row in rows}
    if got != expected:
        raise DemoError(f"the table does not match the emulator's script: expected {expected}, got {got}")
    invalid = [row["person_name"] for row in rows if row["answers_valid"] is False]
    if invalid:
        raise DemoError(f"the survey answers failed validation for {invalid}")


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _table(rows: list[dict[str, Any]]) -> str:
    fields: list[str] = []
    for row in rows:
        for key in row["structured_data"] or {}:
            if key not in fields:
                fields.append(key)
    header = ["Person", "Number", "Outcome", "Ended reason", *fields, "Cost", "Duration"]
    body = [
        [
            row["person_name"] or "-",
            row["phone_number"] or "-",
            row["outcome"],
            row["ended_reason"] or "-",
            *[_cell((row["structured_data"] or {}).get(f)) for f in fields],
            f"${row['cost'] or 0:.4f}",
            "-" if row["duration_seconds"] is None else f"{row['duration_seconds']:.2f}s",
        ]
        for row in rows
    ]
    right = {len(header) - 2, len(header) - 1}
    widths = [max(len(str(line[i])) for line in [header, *body]) for i in range(len(header))]

    def fmt(line: list[str]) -> str:
        return "  ".join(
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i]) for i, cell in enumerate(line)
        ).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([fmt(header), rule, *(fmt(line) for line in body)])


def main() -> int:
    steps = Steps(total=5)
    print("Vapi provider demo: an outbound survey campaign against the bundled emulator")
    print("(no Vapi account, no network: every call is placed on a local emulator)\n")
    from airflow_provider_vapi.emulator.server import EmulatorProcess

    emulator = EmulatorProcess(speed=EMULATOR_SPEED)
    try:
        with steps.step("Starting the Vapi emulator") as note:
            handle = emulator.start()
            note.append(f"{handle.url}, {EMULATOR_SPEED:g}x speed")

        with steps.step("Preparing a throw-away Airflow home") as note:
            shutil.rmtree(HOME, ignore_errors=True)
            HOME.mkdir(parents=True)
            RESULTS_DB.unlink(missing_ok=True)
            TASK_LOG.unlink(missing_ok=True)
            if _cached_metadata_db().exists():  # before Airflow opens the file
                _copy_sqlite(_cached_metadata_db(), HOME / "airflow.db")
            _prepare_environment(handle.url, handle.api_key)
            with _output_to(TASK_LOG):
                how = _migrate()
                sys.path.insert(0, str(EXAMPLES))  # Airflow does this for its DAGs folder, too
                _create_pool()
            note.append(f"{_rel(HOME)}, metadata DB {how}, pool 'vapi' (10 slots)")

        with steps.step("Parsing the example DAGs") as note:
            with _output_to(TASK_LOG):
                dag, count = _load_dag()
            parse_requests = handle.requests()
            if parse_requests:
                raise DemoError(f"parsing the DAGs sent {len(parse_requests)} request(s) to Vapi")
            note.append(f"{count} DAGs, no import errors, no API call at parse time")

        with steps.step(f"Running {DAG_ID} with dag.test()") as note:
            dag_run, tis = _run(dag)
            calls = len(handle.requests(method="POST", path="/call"))
            note.append(f"{len(tis)} task instances succeeded, {calls} calls placed")

        with steps.step("Checking the results table") as note:
            from vapi_example_support import read_results, results_engine, summarize

            engine = results_engine(f"sqlite:///{RESULTS_DB}")
            try:
                rows = read_results(engine, run_id=dag_run.run_id)
            finally:
                engine.dispose()
            _check(rows)
            note.append(f"{len(rows)} rows, outcomes as the emulator scripted them")
    except DemoError as exc:
        print(f"\ndemo failed: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        print(f"\ndemo failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        if TASK_LOG.exists():
            print(f"Task logs: {_rel(TASK_LOG)}", file=sys.stderr)
        return 1
    finally:
        emulator.stop()

    summary = summarize(rows)
    counts = ", ".join(f"{name} {n}" for name, n in summary["by_outcome"].items())
    print(f"\n{_table(rows)}\n")
    print(f"Outcomes:   {counts}  ({summary['calls']} calls)")
    print(f"Answers:    {summary['with_answers']} valid survey answers, {summary['invalid_answers']} invalid")
    print(f"Total cost: ${summary['total_cost']:.4f} (emulated prices, {EMULATOR_SPEED:g}x clock)")
    print(f"Database:   {_rel(RESULTS_DB)} (table vapi_call_results, one row per call)")
    print(
        f'Query it:   sqlite3 {_rel(RESULTS_DB)} "SELECT person_name, outcome, '
        "json_extract(structured_data, '$.satisfaction') FROM vapi_call_results\""
    )
    print(f"Task logs:  {_rel(TASK_LOG)}")
    print(f"\nDone in {time.monotonic() - steps.started:.1f}s.")
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # Everything is stopped, written and closed by now; skip tearing down Airflow's large import
    # graph at interpreter exit, which takes seconds and changes nothing.
    os._exit(code)
