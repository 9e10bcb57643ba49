"""Fixtures of the system suite: ONE real Airflow deployment and ONE emulator for the session.

Every test in ``tests/system`` is marked ``system``. Tests share the deployment (starting Airflow
costs ~20 s) and keep out of each other's way by using their own dag runs and their own customer
numbers; the few that break something (kill the triggerer, restart the emulator) restore it before
they end, and ``deployment`` re-checks health before each test.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .campaign import finish_leftover_runs
from .deployment import REPO, AirflowApi, AirflowDeployment, Emulator
from .procs import install_safety_nets, reap, stray_processes

# Calls take ~0.4 s, analysis follows ~0.15 s after hang-up: a campaign is bound by Airflow, not calls.
EMULATOR_SPEED = 20.0
RESULTS_DIR = REPO / "test-results" / "system"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.system)
            item.add_marker(pytest.mark.timeout(900))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Say it LOUDLY when a system test was skipped (a missing browser must not pass quietly)."""
    skipped = [
        r
        for r in terminalreporter.stats.get("skipped", [])
        if "tests/system" in str(getattr(r, "nodeid", ""))
    ]
    if skipped:
        terminalreporter.section("SYSTEM TESTS SKIPPED", sep="!", red=True, bold=True)
        for report in skipped:
            reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
            terminalreporter.write_line(f"{report.nodeid}: {reason}", red=True, bold=True)


@pytest.fixture(scope="session")
def results_dir() -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    return RESULTS_DIR


@pytest.fixture(scope="session")
def system_workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="vapi-system-"))
    yield path
    if os.environ.get("VAPI_SYSTEM_KEEP") != "1":
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def emulator(system_workdir: Path) -> Iterator[Emulator]:
    install_safety_nets()
    emu = Emulator(system_workdir, speed=EMULATOR_SPEED)
    emu.start()
    try:
        yield emu
    finally:
        emu.stop()


@pytest.fixture(scope="session")
def airflow(emulator: Emulator, system_workdir: Path, results_dir: Path) -> Iterator[AirflowDeployment]:
    """Airflow 3: api-server, scheduler, dag-processor, triggerer; LocalExecutor; all healthy."""
    deployment = AirflowDeployment(
        home=system_workdir / "airflow-home",
        emulator=emulator,
        db_url=os.environ.get("VAPI_SYSTEM_DB_URL") or None,
    )
    started = time.monotonic()
    try:
        deployment.start()
        deployment.start_seconds = time.monotonic() - started  # type: ignore[attr-defined]
        yield deployment
    finally:
        deployment.stop()
        # Keep the component logs with the test results: they explain any failure.
        if deployment.logs.is_dir():
            shutil.copytree(deployment.logs, results_dir / "airflow-logs", dirs_exist_ok=True)
        if emulator.process is not None:
            shutil.copy(emulator.process.log_path, results_dir / "airflow-logs" / "emulator.log")
        leftovers = reap()
        still = stray_processes()
        assert not still, f"processes left behind after teardown: {still}"
        if leftovers:
            print(f"\n[system] teardown swept {len(leftovers)} stray process(es): {leftovers}")


@pytest.fixture
def deployment(airflow: AirflowDeployment, emulator: Emulator) -> AirflowDeployment:
    """The shared deployment, healthy, with the emulator's faults cleared (per test)."""
    if emulator.process is None or not emulator.process.alive():
        emulator.start()
    emulator.handle.clear_faults()
    emulator.handle.configure(speed=EMULATOR_SPEED)
    emulator.handle.set_clock_offset(0.0)  # a test may have skewed Vapi's clock
    for name in AirflowDeployment.COMPONENTS:
        if not airflow.components[name].alive():
            airflow.start_component(name)
    airflow.wait_healthy(120)
    return airflow


@pytest.fixture
def api(deployment: AirflowDeployment, emulator: Emulator) -> Iterator[AirflowApi]:
    yield deployment.api
    # A failed test may leave its campaign running (calls held open): finish it, or the next
    # test's run of the same DAG (max_active_runs=1) would wait behind it.
    with contextlib.suppress(Exception):
        emulator.handle.clear_faults()
    left = finish_leftover_runs(emulator.handle)
    if left:
        print(f"\n[system] finished runs a test left running: {left}")
