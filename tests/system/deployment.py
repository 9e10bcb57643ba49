"""A real Airflow 3 deployment on loopback and the bundled Vapi emulator (the REST client: airflow_api.py).

``AirflowDeployment`` starts ``airflow api-server``, ``scheduler``, ``dag-processor`` and
``triggerer`` as separate processes (so one of them can be killed and restarted alone) in a
throw-away ``AIRFLOW_HOME``: LocalExecutor, the simple auth manager with a known admin password,
SQLite (or the database URL in ``VAPI_SYSTEM_DB_URL``), ``[core] test_connection = Enabled``, the
example DAGs and the test-only DAGs of ``tests/system/dags`` as two DAG bundles, and
``vapi_default`` pointing at the emulator.

``Emulator`` runs ``python -m airflow_provider_vapi.emulator`` on a fixed port with ``--state`` so
that it can be killed and restarted on the same URL with the same calls.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from airflow_provider_vapi.emulator.client import EmulatorHandle
from airflow_provider_vapi.emulator.constants import DEFAULT_API_KEY

from .airflow_api import AirflowApi
from .procs import ManagedProcess, stop_all, wait_until

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
EXAMPLE_DAGS = REPO / "example_dags"
#: Test-only DAGs (fixtures of system tests), a DAG bundle of their own beside the examples.
SYSTEM_DAGS = Path(__file__).resolve().parent / "dags"


def system_dag_module(file_name: str) -> ModuleType:
    """A test-only DAG file imported as a module, for its constants (ids, Variable names, canaries)."""
    spec = importlib.util.spec_from_file_location(
        f"system_dag_{Path(file_name).stem}", SYSTEM_DAGS / file_name
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ADMIN_USER = "admin"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _clean_env() -> dict[str, str]:
    """The parent's environment without any Airflow setting (tests/conftest.py sets its own)."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_", "AIRFLOW__"))}


# -- the emulator -------------------------------------------------------------------------------


class Emulator:
    """The bundled emulator as a subprocess, restartable on the same port and state file."""

    def __init__(self, workdir: Path, *, speed: float, api_key: str = DEFAULT_API_KEY) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.state_file = workdir / "emulator-state.sqlite"
        self.speed = speed
        self.api_key = api_key
        self.process: ManagedProcess | None = None
        self.handle = EmulatorHandle(self.url, api_key)

    def start(self, timeout: float = 30.0) -> EmulatorHandle:
        argv = [
            sys.executable, "-m", "airflow_provider_vapi.emulator",
            "--host", "127.0.0.1", "--port", str(self.port), "--api-key", self.api_key,
            "--speed", str(self.speed), "--state", str(self.state_file),
            # A campaign of 20 is placed at once: don't let the default limit of 10 queue half of it.
            "--concurrency-limit", "100",
        ]  # fmt: skip
        self.process = ManagedProcess("emulator", argv, _clean_env(), self.workdir).start()
        wait_until(self._healthy, timeout, 0.1, f"the emulator on {self.url}")
        return self.handle

    def _healthy(self) -> bool:
        assert self.process is not None
        if not self.process.alive():
            raise RuntimeError(f"the emulator exited:\n{self.process.tail()}")
        return bool(self.handle.health().get("status") == "ok")

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    def restart(self) -> EmulatorHandle:
        self.kill()
        return self.start()


# -- the deployment -----------------------------------------------------------------------------


@dataclass
class AirflowDeployment:
    """One Airflow 3 on loopback: four components, each its own process group."""

    home: Path
    emulator: Emulator
    db_url: str | None = None
    dag_folders: Iterable[Path] = (EXAMPLE_DAGS, SYSTEM_DAGS)
    extra_env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    password: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    components: dict[str, ManagedProcess] = field(default_factory=dict)

    COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def logs(self) -> Path:
        return self.home / "component-logs"

    def _bundles(self) -> str:
        """One local DAG bundle per DAG folder, re-read at once (``refresh_interval`` 0)."""
        bundles = [
            {
                "name": f"bundle-{path.name}",
                "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
                "kwargs": {"path": str(path), "refresh_interval": 0},
            }
            for path in self.dag_folders
            if path.is_dir()
        ]
        return json.dumps(bundles)

    def _vapi_connection(self) -> str:
        """``vapi_default``, pointed at the emulator."""
        conn = {
            "conn_type": "vapi",
            "host": self.emulator.url,
            "password": self.emulator.api_key,
            # Short backoffs so fault bursts cost seconds, a long per-request timeout so that a
            # "slow" fault can hold a request open while a test kills the task; the emulator makes
            # a call within a second, so a create without a clear answer settles in 10 s.
            "extra": {
                "timeout": 20,
                "retry_max_wait": 0.5,
                "retry_total_seconds": 60,
                "max_retries": 8,
                "create_settle_seconds": 10,
            },
        }
        return json.dumps(conn)

    def _airflow_settings(self) -> dict[str, str]:
        """The ``AIRFLOW__*`` settings of every component (one home, one API server, fast beats)."""
        home = self.home
        fernet = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
        return {
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__AUTH_MANAGER": (
                "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
            ),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN_USER}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
            # Paused: a scheduled example DAG (the reminders, 07:00 daily) must not run on its own
            # and put waits into the pool other tests count; trigger() unpauses what a test runs.
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            "AIRFLOW__CORE__FERNET_KEY": fernet,
            "AIRFLOW__CORE__PARALLELISM": "8",
            "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": "32",
            "AIRFLOW__CORE__DAGS_FOLDER": str(EXAMPLE_DAGS),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
            "AIRFLOW__API__BASE_URL": self.url,
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.db_url or f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": self._bundles(),
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "30",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_SEC": "2",
            "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "1",
            # A SIGKILLed triggerer's triggers go to its successor after this many seconds.
            "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "8",
            "AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE": "True",
            # A succeeded task's state store is emptied: a clear must then find its call on Vapi's
            # side, the path Airflow 2.11 (no store) always takes. The suite proves that path.
            "AIRFLOW__STATE_STORE__CLEAR_ON_SUCCESS": "True",
            "AIRFLOW__CONNECTION_TEST__REAPER_INTERVAL": "5",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            # Log servers listen on fixed ports by default (8793/8794): take free ones.
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
            # Retries come after 1 s, not Airflow's default 5 minutes (fault tests retry tasks).
            "AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY": "1",
        }

    def env(self) -> dict[str, str]:
        home = self.home
        env = {
            **_clean_env(),
            **self._airflow_settings(),
            "AIRFLOW_HOME": str(home),
            "PYTHONUNBUFFERED": "1",
            # The example DAGs poll every 10 s by default; calls here last well under a second.
            "VAPI_EXAMPLES_POLL_INTERVAL": "0.5",
            "AIRFLOW_CONN_VAPI_DEFAULT": self._vapi_connection(),
            # The warehouse of the example DAGs (vapi_campaign_from_table, vapi_daily_export).
            "AIRFLOW_CONN_VAPI_WAREHOUSE": json.dumps(
                {"conn_type": "sqlite", "host": str(home / "warehouse.db")}
            ),
            "VAPI_EMULATOR_URL": self.emulator.url,
            "VAPI_SYSTEM_HOME": str(home),
        }
        if os.environ.get("VAPI_SYSTEM_BREAK"):
            # Mutation switch (tests/system/breakers/sitecustomize.py): break a guarantee on purpose.
            env["VAPI_SYSTEM_BREAK"] = os.environ["VAPI_SYSTEM_BREAK"]
            breakers = str(Path(__file__).resolve().parent / "breakers")
            env["PYTHONPATH"] = os.pathsep.join(p for p in (breakers, env.get("PYTHONPATH")) if p)
        env.update(self.extra_env)
        return env

    # -- life cycle -----------------------------------------------------------------------------

    def prepare(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(exist_ok=True)
        (self.home / "passwords.json").write_text(json.dumps({ADMIN_USER: self.password}) + "\n")
        self._env = self.env()
        migrate = subprocess.run(
            [str(VENV_BIN / "airflow"), "db", "migrate"],
            env=self._env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        (self.logs / "db-migrate.log").write_text(migrate.stdout + migrate.stderr)
        if migrate.returncode != 0:
            raise RuntimeError(
                f"airflow db migrate failed:\n{migrate.stdout[-3000:]}{migrate.stderr[-3000:]}"
            )

    def start_component(self, name: str) -> ManagedProcess:
        proc = ManagedProcess(name, [str(VENV_BIN / "airflow"), name], self._env, self.logs).start()
        self.components[name] = proc
        return proc

    def start(self, timeout: float = 180.0) -> AirflowApi:
        self.prepare()
        for name in self.COMPONENTS:
            self.start_component(name)
        self.api = AirflowApi(self.url, ADMIN_USER, self.password)
        self.wait_healthy(timeout)
        return self.api

    def health(self) -> dict[str, Any]:
        resp = self.api.client.get("/api/v2/monitor/health", timeout=5)
        resp.raise_for_status()
        result: dict[str, Any] = resp.json()
        return result

    def wait_healthy(self, timeout: float = 120.0, components: Iterable[str] | None = None) -> None:
        wanted = list(components or ("metadatabase", "scheduler", "triggerer", "dag_processor"))

        def healthy() -> bool:
            for name, proc in self.components.items():
                if not proc.alive():
                    raise RuntimeError(f"airflow {name} exited:\n{proc.tail()}")
            report = self.health()
            return all((report.get(c) or {}).get("status") == "healthy" for c in wanted)

        try:
            wait_until(healthy, timeout, 0.5, f"Airflow components {wanted} to be healthy")
        except TimeoutError as exc:
            tails = "\n".join(f"--- {n}\n{p.tail(25)}" for n, p in self.components.items())
            raise TimeoutError(f"{exc}\n{tails}") from None

    def wait_for_dags(self, dag_ids: Iterable[str], timeout: float = 120.0) -> None:
        missing = list(dag_ids)

        def parsed() -> bool:
            missing[:] = [d for d in missing if self.api.request("GET", f"/dags/{d}").status_code != 200]
            return not missing

        try:
            wait_until(parsed, timeout, 1.0, "DAGs to be parsed")
        except TimeoutError:
            errors = self.api.get("/importErrors")
            raise TimeoutError(f"DAGs {missing} not parsed; import errors: {errors}") from None

    def restart(self, name: str, *, kill: bool = True) -> ManagedProcess:
        old = self.components[name]
        old.kill() if kill else old.stop()
        return self.start_component(name)

    def stop(self) -> None:
        stop_all(list(self.components.values()))

    def dump_logs(self, lines: int = 40) -> str:
        return "\n".join(f"--- airflow {n} ---\n{p.tail(lines)}" for n, p in self.components.items())


def wait_for(predicate: Any, timeout: float, what: str, interval: float = 0.5) -> Any:
    """Re-exported for tests: poll until truthy."""
    return wait_until(predicate, timeout, interval, what)


def now() -> float:
    return time.monotonic()
