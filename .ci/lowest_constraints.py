"""Print a pip constraint ``name==X`` for each runtime dependency declared as ``name>=X``.

``make test-compat`` installs with ``uv pip install --resolution lowest-direct`` and these
constraints. lowest-direct alone is not enough for the runtime dependencies: uv takes the newest
release of every transitive dependency, and the newest releases of the providers that Airflow 2.11
itself installs (common-sql, common-io, http) require a newer common-compat and pydantic than ours,
so uv would install those instead of our lower bounds. With the constraints the resolver picks
older providers, or fails and says which declared bound cannot be installed with Airflow 2.11.

Standard library only: it runs before the venv exists. ``apache-airflow`` is left out (the
Makefile pins it through COMPAT_AIRFLOW). tests/test_lower_bounds.py checks what got installed.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

_BOUND = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*[^;]*?>=\s*([0-9][^,;\s]*)")


#: Upper bounds Airflow 2.11 needs but does not declare (its own constraints files pin them; a user
#: installs it with those). cryptography 51 made ``MultiFernet`` a Rust object that refuses the
#: ``is_encrypted`` attribute Airflow 2.11's ``get_fernet`` sets, so every connection with a password
#: fails to load ("Connection not found") once a Fernet key is configured.
AIRFLOW_2_CAPS = ("cryptography<51",)


def constraints(pyproject: Path) -> list[str]:
    deps = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    pins = []
    for dep in deps:
        match = _BOUND.match(dep)
        if match is None:
            sys.exit(f"lowest_constraints: {dep!r} declares no lower bound (name>=X)")
        name, version = match.groups()
        if name.lower() != "apache-airflow":
            pins.append(f"{name}=={version}")
    return pins


if __name__ == "__main__":
    root = Path(__file__).resolve().parent.parent
    print("\n".join([*constraints(root / "pyproject.toml"), *AIRFLOW_2_CAPS]))
