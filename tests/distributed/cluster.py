"""A distributed Airflow 3 on loopback: CeleryExecutor, two Celery workers, two triggerers.

:class:`DistributedDeployment` is the system suite's :class:`~tests.system.deployment.
AirflowDeployment` (api-server, scheduler, dag-processor; the same env, REST client and health
checks) with the CeleryExecutor on a Redis broker (:mod:`tests.distributed.redis_server`), its
metadata in PostgreSQL, and named extra components, each an ``airflow`` command with its own
environment overrides:

* ``triggerer-1`` (A) with ``--capacity`` :data:`TRIGGERER_A_CAPACITY`, so that B takes the rest
  of a campaign's waits and both hold some; ``triggerer-2`` (B) at the default capacity, so it can
  take everything once A is gone. Each serves trigger logs on a port of its own.
* ``celery-worker-1`` and ``celery-worker-2`` (``airflow celery worker``), each with a Celery
  hostname and a worker log-server port of its own (two workers on one machine would both want
  8793).

The settings that make a SIGKILLed worker or triggerer cost seconds, not minutes, are in
:data:`RECOVERY_SETTINGS`, one line each on why.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.system.deployment import (
    ADMIN_USER,
    VENV_BIN,
    AirflowApi,
    AirflowDeployment,
    free_port,
)
from tests.system.procs import ManagedProcess, pid_alive

#: The test-only DAGs of this suite: a DAG bundle of their own (no example DAGs to parse).
DISTRIBUTED_DAGS = Path(__file__).resolve().parent / "dags"
TRIGGERER_A_CAPACITY = 25
#: Task slots per Celery worker (prefork processes); parallelism is both workers' slots together.
WORKER_CONCURRENCY = 4
WORKERS = ("celery-worker-1", "celery-worker-2")
TRIGGERERS = ("triggerer-1", "triggerer-2")

#: Airflow and Celery settings for fast recovery on a loaded 2-core machine (each: why).
RECOVERY_SETTINGS = {
    # A task whose worker was SIGKILLed stays "running" until its heartbeat is this old (default
    # 300 s); the supervisor heartbeats every 2 s (below), so 20 s is 10 missed beats, not load.
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "20",
    # ... and the scheduler looks for such tasks every 2 s (default 10 s).
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "2",
    # The task supervisor's heartbeat to the API server (default every 5 s).
    "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "2",
    # A message a dead worker had taken but not started leaves Airflow's "queued" after this long
    # (default 600 s): the scheduler revokes and re-queues it. Also the queued workload token's
    # lifetime, so not shorter than a real wait in the Redis queue here.
    "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": "120",
    "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT_CHECK_INTERVAL": "5",
    # Redis hands an unacknowledged message (acks_late: a task its dead worker had taken) to another
    # worker after this long (the provider's default: 86,400 s). Longer than any task run here
    # (seconds), or a live task's message would be delivered twice (the second delivery is refused).
    "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT": "60",
    # Acknowledge a message when its task ends, not when it starts (the provider's default, stated):
    # a worker that dies mid-task leaves the message to be redelivered instead of losing it.
    "AIRFLOW__CELERY__TASK_ACKS_LATE": "True",
    # A worker reserves no more messages than it has free processes (the provider's default, stated):
    # a SIGKILLed worker strands at most the tasks it was running, none waiting behind them.
    "AIRFLOW__CELERY__WORKER_PREFETCH_MULTIPLIER": "1",
    # Sending a task to Redis from the loaded scheduler may take more than the default 1 s.
    "AIRFLOW__CELERY__OPERATION_TIMEOUT": "10",
    # A SIGKILLed triggerer's triggers go to the other one after its heartbeat is this old.
    "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "8",
    "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "1",
}


class ComponentExited(RuntimeError):
    """A component of the deployment exited while the suite waited for something."""


@dataclass(frozen=True)
class ComponentSpec:
    """An ``airflow`` sub-command and the environment overrides of one component."""

    args: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)


def default_specs(worker_concurrency: int, triggerer_a_capacity: int) -> dict[str, ComponentSpec]:
    specs = {name: ComponentSpec((name,)) for name in ("api-server", "scheduler", "dag-processor")}
    for name, capacity in zip(TRIGGERERS, (triggerer_a_capacity, None), strict=True):
        args = ("triggerer",) + (("--capacity", str(capacity)) if capacity else ())
        specs[name] = ComponentSpec(args, {"AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port())})
    for name in WORKERS:
        args = (
            "celery", "worker", "--celery-hostname", f"{name}@%h",
            "--concurrency", str(worker_concurrency), "--without-mingle", "--without-gossip",
        )  # fmt: skip
        specs[name] = ComponentSpec(args, {"AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port())})
    return specs


@dataclass
class DistributedDeployment(AirflowDeployment):
    """CeleryExecutor on Redis, PostgreSQL metadata, 2 workers, 2 triggerers (see the module)."""

    broker_url: str = ""
    worker_concurrency: int = WORKER_CONCURRENCY
    triggerer_a_capacity: int = TRIGGERER_A_CAPACITY
    dag_folders: Iterable[Path] = (DISTRIBUTED_DAGS,)
    specs: dict[str, ComponentSpec] = field(default_factory=dict)
    #: The triggerer jobs (``job`` table ids) of A and B, known once ``start`` returns.
    triggerer_a_job: int = 0
    triggerer_b_job: int = 0

    COMPONENTS = ("api-server", "scheduler", "dag-processor", *TRIGGERERS, *WORKERS)

    def __post_init__(self) -> None:
        if not self.broker_url or not self.db_url:
            raise ValueError("a distributed deployment needs a Redis broker_url and a PostgreSQL db_url")
        self.specs = self.specs or default_specs(self.worker_concurrency, self.triggerer_a_capacity)

    def env(self) -> dict[str, str]:
        env = super().env()
        env.update(RECOVERY_SETTINGS)
        env.update(
            {
                "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
                "AIRFLOW__CELERY__BROKER_URL": self.broker_url,
                "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(self.worker_concurrency),
                # Every slot of both workers, no more: a queued task is one a worker can start now.
                "AIRFLOW__CORE__PARALLELISM": str(self.worker_concurrency * len(WORKERS)),
                "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": "64",
                "AIRFLOW__CORE__DAGS_FOLDER": str(DISTRIBUTED_DAGS),
            }
        )
        env.update(self.extra_env)
        return env

    # -- life cycle -----------------------------------------------------------------------------

    def start_component(self, name: str) -> ManagedProcess:
        spec = self.specs[name]
        argv = [str(VENV_BIN / "airflow"), *spec.args]
        proc = ManagedProcess(name, argv, {**self._env, **spec.env}, self.logs).start()
        self.components[name] = proc
        return proc

    def start(self, timeout: float = 240.0) -> AirflowApi:
        """Migrate, start every component, wait until all are up: triggerer A's job is known first."""
        self.prepare()
        self.api = AirflowApi(self.url, ADMIN_USER, self.password)
        for name in ("api-server", "scheduler", "dag-processor", TRIGGERERS[0]):
            self.start_component(name)
        self.wait_up(self._healthy, timeout, "the api-server, scheduler, dag-processor and triggerer A")
        (self.triggerer_a_job,) = self.wait_triggerer_jobs(1, timeout)
        for name in (TRIGGERERS[1], *WORKERS):
            self.start_component(name)
        jobs = self.wait_triggerer_jobs(2, timeout)
        (self.triggerer_b_job,) = set(jobs) - {self.triggerer_a_job}
        self.wait_workers(WORKERS, timeout)
        return self.api

    def kill_component(self, name: str) -> float:
        """SIGKILL a component's whole process tree (a crash: nothing cleans up) and take it out of
        the live set (``start_component`` brings it back); the monotonic time of the kill."""
        proc = self.components.pop(name)
        pids = proc.group_pids()
        killed_at = time.monotonic()
        proc.kill()
        deadline = killed_at + 15
        while [p for p in pids if pid_alive(p)]:  # SIGKILL is at once; becoming a zombie takes a moment
            if time.monotonic() > deadline:
                raise TimeoutError(f"the SIGKILLed {name} is still alive: {pids}")
            time.sleep(0.1)
        return killed_at

    def wait_up(self, predicate: Callable[[], object], timeout: float, what: str) -> None:
        """``wait_until``, failing at once (with its log) when a component exits meanwhile."""

        def check() -> object:
            for name, proc in self.components.items():
                if not proc.alive():
                    raise ComponentExited(f"airflow {name} exited:\n{proc.tail()}")
            try:
                return predicate()
            except ComponentExited:
                raise
            except Exception:
                return False

        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                tails = "\n".join(f"--- {n}\n{p.tail(15)}" for n, p in self.components.items())
                raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}\n{tails}")
            time.sleep(0.5)

    def _healthy(self) -> bool:
        report = self.health()
        wanted = ("metadatabase", "scheduler", "triggerer", "dag_processor")
        return all((report.get(c) or {}).get("status") == "healthy" for c in wanted)

    def alive_triggerer_jobs(self) -> list[int]:
        page = self.api.get("/jobs", job_type="TriggererJob", job_state="running", is_alive=True, limit=100)
        return sorted(int(job["id"]) for job in page["jobs"])

    def wait_triggerer_jobs(self, count: int, timeout: float) -> list[int]:
        """Until exactly ``count`` triggerer jobs are alive (heartbeating); their ids."""
        jobs: list[int] = []

        def alive() -> bool:
            jobs[:] = self.alive_triggerer_jobs()
            return len(jobs) == count

        self.wait_up(alive, timeout, f"{count} live triggerer job(s)")
        return jobs

    def ping_workers(self, timeout: float = 2.0) -> set[str]:
        """The Celery node names that answer a broadcast ping (``celery-worker-1@<host>`` ...)."""
        from celery import Celery

        app = Celery(broker=self.broker_url)
        try:
            replies: list[dict[str, Any]] = app.control.ping(timeout=timeout) or []
        finally:
            with contextlib.suppress(Exception):
                app.close()
        return {name for reply in replies for name in reply}

    def wait_workers(self, names: Iterable[str], timeout: float) -> set[str]:
        """Until every named worker answers a ping; the Celery nodes that answered."""
        wanted, nodes = set(names), set()

        def answering() -> bool:
            nodes.clear()
            nodes.update(self.ping_workers())
            return wanted <= {node.split("@", 1)[0] for node in nodes}

        self.wait_up(answering, timeout, f"Celery workers {sorted(wanted)} to answer a ping")
        return nodes
