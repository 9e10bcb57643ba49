"""``python -m tests.simulation``: explore seeds (``make chaos``); see :mod:`.runner`."""

import os
import sys
import tempfile

# Before anything imports Airflow: a private home with SQLite, as tests/conftest.py sets up.
_HOME = tempfile.mkdtemp(prefix="vapi-sim-home-")
os.environ.setdefault("AIRFLOW_HOME", _HOME)
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "False")
os.environ.setdefault("AIRFLOW__DATABASE__LOAD_DEFAULT_CONNECTIONS", "False")
os.environ.setdefault(
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", f"sqlite:///{os.environ['AIRFLOW_HOME']}/airflow.db"
)
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", os.path.join(os.environ["AIRFLOW_HOME"], "dags"))

from tests.simulation.runner import main  # noqa: E402

sys.exit(main())
