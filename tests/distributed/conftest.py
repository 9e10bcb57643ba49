"""Fixtures of the distributed suite: ONE Celery deployment of Airflow 3 for the session.

``stack`` starts, in order, Debian's PostgreSQL (Airflow's metadata and the campaign's tables),
Debian's Redis (the Celery broker), the bundled emulator and a
:class:`~tests.distributed.cluster.DistributedDeployment` (api-server, scheduler, dag-processor,
two triggerers, two Celery workers), and stops them in the reverse order; then nothing may be left
running (the system suite's ``reap`` and ``stray_processes``). The component logs are kept in
``test-results/distributed/airflow-logs``.

Every test here is marked ``system`` and ``distributed``. The suite runs in a pytest session of its
own (``make test-distributed``; ``make test`` runs it after the rest): a session that also selected
the system suite would have two deployments up at once, so the distributed tests are deselected
there, loudly. Without ``redis-server`` or the Celery provider the tests skip loudly, or fail when
``VAPI_REQUIRE_DISTRIBUTED=1`` (CI) says they must run.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import pytest

from tests.pg_server import PostgresServer, PostgresUnavailable, start_server
from tests.system.deployment import REPO, Emulator
from tests.system.procs import install_safety_nets, reap, stray_processes

from .cluster import DistributedDeployment
from .redis_server import RedisServer, RedisUnavailable, find_redis_server
from .scenario import build_cluster

HERE = Path(__file__).resolve().parent
RESULTS_DIR = REPO / "test-results" / "distributed"
SUMMARY = RESULTS_DIR / "summary.json"
REQUIRE_ENV = "VAPI_REQUIRE_DISTRIBUTED"
#: Seconds between the waits' checks: the interval the request rate is measured in.
POLL_INTERVAL = 5.0
_DESELECTED: list[str] = []


def _here(item: pytest.Item) -> bool:
    return HERE in Path(str(item.fspath)).parents


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """After ``-m`` filtering (trylast): a session that selected other system tests too drops ours.

    The tests mark themselves ``system`` and ``distributed`` (``pytestmark``), so that ``-m``
    sees the marks before this runs."""
    ours = [i for i in items if _here(i)]
    others = [i for i in items if not _here(i) and i.get_closest_marker("system")]
    if ours and others:
        _DESELECTED.extend(i.nodeid for i in ours)
        config.hook.pytest_deselected(items=ours)
        items[:] = [i for i in items if not _here(i)]
    for item in ours:
        item.add_marker(pytest.mark.timeout(900))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Say it LOUDLY when a distributed test did not run."""
    skipped = [r for r in terminalreporter.stats.get("skipped", []) if "tests/distributed" in r.nodeid]
    if not (skipped or _DESELECTED):
        return
    terminalreporter.section("DISTRIBUTED TESTS NOT RUN", sep="!", red=True, bold=True)
    for report in skipped:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        terminalreporter.write_line(f"{report.nodeid}: {reason}", red=True, bold=True)
    for nodeid in _DESELECTED:
        terminalreporter.write_line(
            f"{nodeid}: deselected, the system suite is in this session too (two deployments at once); "
            "run it alone: make test-distributed",
            red=True,
            bold=True,
        )


def _unavailable(reason: str) -> NoReturn:
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(
            f"the distributed suite cannot run, and {REQUIRE_ENV}=1 requires it: {reason}", pytrace=False
        )
    pytest.skip(f"\n{'!' * 78}\nSKIPPED, DISTRIBUTED SUITE: {reason}\n{'!' * 78}")


def _check_prerequisites() -> None:
    try:
        find_redis_server()
        import airflow.providers.celery  # noqa: F401
    except (RedisUnavailable, ImportError) as exc:
        _unavailable(f"{exc} (the Celery provider is in the dev extra: make install)")


@dataclass
class Stack:
    """What the distributed test drives."""

    pg: PostgresServer
    redis: RedisServer
    emulator: Emulator
    cluster: DistributedDeployment
    workdir: Path


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    _check_prerequisites()
    install_safety_nets()
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    SUMMARY.unlink(missing_ok=True)
    shutil.rmtree(RESULTS_DIR / "airflow-logs", ignore_errors=True)
    workdir = Path(tempfile.mkdtemp(prefix="vapi-distributed-"))
    try:
        pg = start_server()
    except PostgresUnavailable as exc:
        _unavailable(str(exc))
    try:
        yield from _run_stack(pg, workdir)
    finally:
        pg.stop()
        shutil.rmtree(pg.root, ignore_errors=True)
        leftovers = reap()
        still = stray_processes()
        if os.environ.get("VAPI_SYSTEM_KEEP") != "1":
            shutil.rmtree(workdir, ignore_errors=True)
        assert not still, f"processes left behind after teardown: {still}"
        if leftovers:
            print(f"\n[distributed] teardown swept {len(leftovers)} stray process(es): {leftovers}")


def _run_stack(pg: PostgresServer, workdir: Path) -> Iterator[Stack]:
    redis = RedisServer(workdir / "redis", workdir / "airflow-home" / "component-logs").start()
    emulator = Emulator(workdir, speed=1.0)
    cluster: DistributedDeployment | None = None
    try:
        emulator.start()
        # A thousand calls live at once (Vapi's limit here: the account's; the emulator's: 100).
        emulator.handle.configure(concurrency_limit=2000)
        cluster = build_cluster(workdir, pg, redis, emulator, poll_interval=POLL_INTERVAL)
        cluster.start()
        yield Stack(pg, redis, emulator, cluster, workdir)
    finally:
        if cluster is not None:
            cluster.stop()
        emulator.stop()
        redis.stop()
        logs = workdir / "airflow-home" / "component-logs"
        if logs.is_dir():
            shutil.copytree(logs, RESULTS_DIR / "airflow-logs", dirs_exist_ok=True)
        if emulator.process is not None and emulator.process.log_path.exists():
            shutil.copy(emulator.process.log_path, RESULTS_DIR / "airflow-logs" / "emulator.log")
