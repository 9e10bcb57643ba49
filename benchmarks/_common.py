"""Shared helpers of the benchmarks: the machine line, the emulator subprocess, percentiles, times."""

from __future__ import annotations

import json
import os
import platform
import shlex
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kib / 1024 / 1024:.1f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    return (
        f"{cpu}, {os.cpu_count()} cores{mem}; {platform.system()} {platform.release()}; "
        f"Python {platform.python_version()}"
    )


def header(name: str) -> None:
    print(f"# {name}")
    print(f"command: {shlex.join([Path(sys.executable).name, *sys.argv])}")
    print(f"machine: {machine()}")


def percentile(values: Sequence[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100
    low = int(k)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (k - low)


def conversation_number(i: int) -> str:
    """The ``i``-th phone number that the emulator answers with an ordinary conversation (numbers
    ending 9000-9999; its scripted outcomes use the endings 0001-0007)."""
    return f"+1555{i // 1000:03d}{9000 + i % 1000:04d}"


def ts(value: str) -> float:
    """An ISO 8601 time of the API (``...Z``) as a POSIX timestamp."""
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def conn_env(url: str, api_key: str, **extra: Any) -> dict[str, str]:
    """``AIRFLOW_CONN_VAPI_DEFAULT`` (the provider) and ``AIRFLOW_CONN_VAPI_HTTP`` (HTTP provider)."""
    host, _, port = url.split("//", 1)[1].partition(":")
    return {
        "AIRFLOW_CONN_VAPI_DEFAULT": json.dumps(
            {"conn_type": "vapi", "host": url, "password": api_key, "extra": extra}
        ),
        "AIRFLOW_CONN_VAPI_HTTP": json.dumps(
            {"conn_type": "http", "host": host, "port": int(port), "schema": "http"}
        ),
    }


def quiet_airflow() -> None:
    """A throw-away Airflow home so importing Airflow touches nothing of the user's."""
    import tempfile

    home = tempfile.mkdtemp(prefix="vapi-bench-airflow-")
    os.environ.setdefault("AIRFLOW_HOME", home)
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "False")
    os.environ.setdefault("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", f"sqlite:///{home}/airflow.db")
    os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "ERROR")
