"""Everything a real run stores, as ``(place, text)`` pairs, and the grep for secrets in them.

One helper for the system suite's "no secret is stored" tests (``test_no_secrets.py``,
``test_secret_canaries.py``). The places:

* what the REST API serves of a run: each task instance with its ``rendered_fields`` (the Rendered
  tab), each try's log, each XCom entry (as stored and deserialized);
* files: the task, trigger and DAG-processor logs on disk, every component's output, export files;
* databases, table by table and column by column, row by row: the metadata DB (``xcom``,
  ``rendered_task_instance_fields``, ``task_instance`` with ``next_kwargs``, ``dag_run.conf``, the
  audit ``log``, ``callback``, the task state store ...; not ``serialized_dag`` and ``dag_code``,
  which hold the DAG file as written) and a warehouse. A value that is a Fernet token (``trigger``
  kwargs) is searched decrypted too, except in ``variable`` and ``connection``, which are where
  secrets are kept on purpose (searched as stored: encrypted, they must not match);
* the ``trigger`` table while the run is live (:class:`TriggerSampler`): Airflow deletes a trigger
  once its task has resumed, so it is read, decrypted, every half second until the run ends;
* the emulator's request log (Vapi's side, which redacts bodies and keeps fingerprints) and stdout.

A secret is found by either half of its random part, so a truncated or split one counts too;
reports name the place and the secret's label, never the secret.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from cryptography.fernet import Fernet, InvalidToken

from .airflow_api import AirflowApi
from .deployment import AirflowDeployment, Emulator

#: ``(where, text)``: one stored thing, named so that a failure says where to look.
Place = tuple[str, str]
#: Tables that hold the DAG file as written (its literals included), by design.
DAG_SOURCE_TABLES = frozenset({"serialized_dag", "dag_code"})
#: Tables that keep secrets on purpose, encrypted: searched as stored, never decrypted.
SECRET_STORES = frozenset({"variable", "connection"})
#: Columns that name a row in a report (the first few a table has).
_ROW_KEYS = ("dag_id", "run_id", "task_id", "map_index", "key", "try_number", "event", "id")
_FERNET = re.compile(r"^gAAAAA[A-Za-z0-9_=-]{40,}$")


@dataclass(frozen=True)
class Secret:
    label: str  # what a report names instead of the value
    value: str = field(repr=False)
    needles: tuple[str, ...] = field(repr=False)  # substrings any of which, found, is a leak


def secret(label: str, value: str) -> Secret:
    """A secret whose random part is the last 32 characters of ``value`` (either half is a hit)."""
    core = value[-32:]
    return Secret(label, value, (core[:16], core[16:]))


@dataclass(frozen=True)
class Leak:
    secret: Secret
    place: str
    excerpt: str  # the text around it, every secret replaced by its label

    def __str__(self) -> str:
        return f"{self.secret.label} in {self.place}: ...{self.excerpt}..."


# -- the grep -----------------------------------------------------------------------------------------


def hide(text: str, secrets: Iterable[Secret]) -> str:
    """``text`` with every secret (and every needle of one) replaced by ``<its label>``."""
    for s in secrets:
        for needle in (s.value, *s.needles):
            text = text.replace(needle, f"<{s.label}>")
    return text


def _excerpt(text: str, at: int, secrets: Iterable[Secret], width: int = 100, margin: int = 64) -> str:
    """About ``width`` characters either side of ``at``, secrets hidden; hidden with a ``margin``
    that is then cut off, so that no piece of a secret cut by the window's edge is shown."""
    start, end = max(at - width - margin, 0), at + width + margin
    piece = hide(text[start:end], secrets)
    piece = piece[margin if start else 0 : len(piece) - margin if end < len(text) else None]
    return piece.replace("\n", " ")


def leaks(places: Iterable[Place], secrets: list[Secret]) -> list[Leak]:
    """Every ``(secret, place)`` where a needle of the secret occurs; one regex pass per place."""
    by_needle = {n: s for s in secrets for n in s.needles}
    if not by_needle:
        return []
    anything = re.compile("|".join(map(re.escape, by_needle)))
    found: dict[tuple[str, str], Leak] = {}
    for place, text in places:
        for match in anything.finditer(text):
            hit = by_needle[match.group()]
            if (hit.label, place) not in found:
                found[hit.label, place] = Leak(hit, place, _excerpt(text, match.start(), secrets))
    return list(found.values())


def report(found: list[Leak]) -> str:
    return f"{len(found)} secret leak(s):\n" + "\n".join(sorted(map(str, found)))


# -- the REST API's view of a run ----------------------------------------------------------------------


def task_instance_places(api: AirflowApi, dag_id: str, run_id: str, logs: Path) -> Iterator[Place]:
    """Each task instance as the API shows it (``rendered_fields`` included) and each try's log."""
    for ti in api.task_instances(dag_id, run_id):
        name = f"{ti['task_id']}[{ti['map_index']}]"
        full = api.task_instance(dag_id, run_id, ti["task_id"], ti["map_index"])
        assert "rendered_fields" in full, f"no rendered_fields on {name}"
        yield f"task instance {name} (REST API; rendered_fields: the Rendered tab)", json.dumps(full)
        for attempt in range(1, int(ti["try_number"]) + 1):
            log = api.task_log(dag_id, run_id, ti["task_id"], attempt, ti["map_index"])
            if log is None:  # the API lost the try; its file is searched with the other files
                on_disk = list((logs / f"dag_id={dag_id}").rglob(f"task_id={ti['task_id']}/*"))
                assert on_disk, f"no log of {name} try {attempt}, neither through the API nor on disk"
                continue
            yield f"log of {name} try {attempt} (REST API)", log


def xcom_places(api: AirflowApi, dag_id: str, run_id: str) -> Iterator[Place]:
    entries = api.xcom_entries(dag_id, run_id)
    yield "XCom entry list of the run (REST API)", json.dumps(entries)
    for entry in entries:
        name = f"XCom {entry['task_id']}[{entry['map_index']}] {entry['key']} (REST API"
        yield f"{name}, as stored)", api.xcom_raw(dag_id, run_id, entry)
        yield f"{name}, deserialized)", api.xcom_raw(dag_id, run_id, entry, deserialize=True)


# -- files and databases -------------------------------------------------------------------------------


def file_places(*paths: Path) -> Iterator[Place]:
    """Every file under each folder (and each file) of ``paths``."""
    files = [f for p in paths if p.is_dir() for f in sorted(p.rglob("*")) if f.is_file()]
    files += [p for p in paths if p.is_file()]
    for path in files:
        yield f"file {path}", path.read_text(encoding="utf-8", errors="replace")


def _text(value: Any) -> str:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, dict | list):
        return json.dumps(value, default=str)
    return str(value)


def _decrypted(text: str, fernet: Fernet | None) -> str | None:
    if fernet is None or not _FERNET.match(text):
        return None
    try:
        return fernet.decrypt(text.encode()).decode("utf-8", errors="replace")
    except InvalidToken:
        return None


def _row_places(db: str, table: str, row: Mapping[str, Any], fernet: Fernet | None) -> Iterator[Place]:
    tag = ", ".join(f"{k}={row[k]}" for k in _ROW_KEYS if row.get(k) is not None)
    for column, value in row.items():
        if value is None:
            continue
        text = _text(value)
        where = f"{db} {table}.{column} [{tag}]"
        yield where, text
        plain = _decrypted(text, None if table in SECRET_STORES else fernet)
        if plain is not None:
            yield f"{where} (decrypted)", plain


def database_places(
    name: str, url: str, *, fernet_key: str | None = None, skip: Iterable[str] = ()
) -> list[Place]:
    """Every value of every table (but ``skip``) of the database at ``url``, row by row."""
    fernet = Fernet(fernet_key.encode()) if fernet_key else None
    engine = sa.create_engine(url)
    try:
        with engine.connect() as db:
            tables = [t for t in sa.inspect(db).get_table_names() if t not in set(skip)]
            places: list[Place] = []
            for table in tables:
                rows = db.execute(sa.text(f'SELECT * FROM "{table}"')).mappings().all()
                for row in rows:
                    places.extend(_row_places(name, table, dict(row), fernet))
            return places
    finally:
        engine.dispose()


def metadata_db_url(deployment: AirflowDeployment) -> str:
    return deployment.db_url or f"sqlite:///{deployment.home / 'airflow.db'}"


def fernet_key(deployment: AirflowDeployment) -> str:
    """The deployment's Fernet key, as its components got it."""
    key: str = deployment._env["AIRFLOW__CORE__FERNET_KEY"]
    return key


def metadata_db_places(deployment: AirflowDeployment) -> list[Place]:
    return database_places(
        "metadata DB",
        metadata_db_url(deployment),
        fernet_key=fernet_key(deployment),
        skip=DAG_SOURCE_TABLES,
    )


class TriggerSampler:
    """The ``trigger`` table's rows, decrypted, read again and again while a run is live."""

    def __init__(self, deployment: AirflowDeployment) -> None:
        self.fernet = Fernet(fernet_key(deployment).encode())
        self.engine = sa.create_engine(metadata_db_url(deployment))
        self.seen: dict[str, tuple[str, str]] = {}  # id -> (classpath, decrypted kwargs)

    def sample(self) -> None:
        with self.engine.connect() as db:
            rows = db.execute(sa.text('SELECT id, classpath, kwargs FROM "trigger"')).all()
        for trigger_id, classpath, kwargs in rows:
            plain = _decrypted(str(kwargs), self.fernet)
            self.seen[str(trigger_id)] = (str(classpath), plain if plain is not None else str(kwargs))

    def wait_for_run(self, api: AirflowApi, dag_id: str, run_id: str, timeout: float) -> dict[str, Any]:
        """Sample until the run has finished; returns the run."""
        try:
            return api.wait_for_run(dag_id, run_id, timeout, interval=0.5, on_poll=self.sample)
        finally:
            self.engine.dispose()

    def places(self) -> list[Place]:
        return [
            (f"metadata DB trigger.kwargs [id={i}, {cls}] (decrypted, read while live)", kwargs)
            for i, (cls, kwargs) in self.seen.items()
        ]


# -- everything ----------------------------------------------------------------------------------------


def stored_places(
    api: AirflowApi, deployment: AirflowDeployment, emulator: Emulator, dag_id: str, run_id: str
) -> list[Place]:
    """What the run left in Airflow (REST views, log files, component output, the metadata DB) and
    in the emulator's request log. The emulator's stdout is :func:`emulator_stdout` (it announces
    the API key it accepts)."""
    logs = deployment.home / "logs"
    places = [*task_instance_places(api, dag_id, run_id, logs), *xcom_places(api, dag_id, run_id)]
    places.append(("the emulator's request log", json.dumps(emulator.handle.request_log())))
    places.extend(file_places(logs, deployment.logs))
    places.extend(metadata_db_places(deployment))
    return places


def emulator_stdout(emulator: Emulator) -> list[Place]:
    assert emulator.process is not None
    return [
        (f"the emulator's stdout ({name})", text) for name, text in file_places(emulator.process.log_path)
    ]
