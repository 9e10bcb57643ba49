"""Test set-up: a throw-away Airflow home, and the Vapi connection pointed at the emulator.

The emulator fixtures themselves (``vapi_emulator`` ...) come from the package's pytest plugin,
``airflow_provider_vapi.emulator.pytest_plugin``, the same one users get for their own DAG tests.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings as hypothesis_settings

# A real PostgreSQL server (Debian's package) that the session starts on loopback: the
# ``postgres_server`` and ``postgres_uri`` fixtures (tests/pg_server.py); the example DAGs' ``run_dag``
# and ``migrated_db`` (tests/example_dags_support.py).
pytest_plugins = ["tests.pg_server", "tests.example_dags_support"]

# Before anything imports Airflow: a private home, no examples, SQLite in that home.
_HOME = Path(tempfile.mkdtemp(prefix="vapi-airflow-home-"))
os.environ.setdefault("AIRFLOW_HOME", str(_HOME))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "False")
# No default connections: Airflow 2.11 would register their passwords ("password", "airflow")
# with its process-wide log masker, which then hides those words inside any rendered text.
os.environ.setdefault("AIRFLOW__DATABASE__LOAD_DEFAULT_CONNECTIONS", "False")
os.environ.setdefault("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", f"sqlite:///{_HOME / 'airflow.db'}")
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(_HOME / "dags"))

# CI replays the same fuzz examples every run (a new finding must not fail an unrelated change);
# a developer's run explores fresh ones. ``.ci/run`` sets VAPI_FUZZ_PROFILE=ci.
hypothesis_settings.register_profile("ci", derandomize=True, print_blob=True)
hypothesis_settings.register_profile("explore", print_blob=True)
hypothesis_settings.load_profile(os.environ.get("VAPI_FUZZ_PROFILE", "explore"))


def vapi_conn_json(url: str, api_key: str, **extra: Any) -> str:
    """An ``AIRFLOW_CONN_*`` value in JSON form for the emulator."""
    return json.dumps({"conn_type": "vapi", "host": url, "password": api_key, "extra": extra})


@pytest.fixture
def vapi_conn(vapi_emulator: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """``vapi_default`` pointing at the emulator, with short retry waits so fault tests stay fast."""
    monkeypatch.setenv(
        "AIRFLOW_CONN_VAPI_DEFAULT",
        vapi_conn_json(
            vapi_emulator.url,
            vapi_emulator.api_key,
            timeout=5,
            retry_max_wait=0.2,
            retry_total_seconds=20,
            create_settle_seconds=1,
        ),
    )
    yield "vapi_default"


@pytest.fixture(scope="session")
def airflow_db() -> None:
    """A migrated metadata DB in the throw-away home (once per session, a few seconds)."""
    from airflow.utils import db

    db.initdb()
