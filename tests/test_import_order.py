"""Every module of the provider imports in a fresh process, before Airflow itself.

Importing Airflow discovers providers, which calls our ``get_provider_info``; a module that the
discovery imports (``wire.connection`` -> ``wire.retries``) must not import one that is still half
built at that moment (``exceptions``, which imports Airflow). A test process has usually imported
Airflow already, so only a fresh interpreter shows such a loop.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

FIRST_IMPORTS = [
    "exceptions",
    "wire.retries",
    "models",
    "wire.paging",
    "wire.connection",
    "hook.core",
    "hooks",
    "waiting.trigger",
    "triggers",
]


@pytest.mark.parametrize("module", FIRST_IMPORTS)
def test_a_module_imported_first_in_a_fresh_process(module: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", f"import airflow_provider_vapi.{module}"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
