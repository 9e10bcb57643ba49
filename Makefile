# Every target sets up what it needs on a fresh machine (only Python 3.11+ is assumed) and is
# quick once .venv is installed. AIRFLOW_VERSION picks the Airflow the venv is built against.
SHELL := /bin/bash
PYTHON ?= python3
AIRFLOW_VERSION ?= 3.3.2
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(AIRFLOW_VERSION)

COMPAT_AIRFLOW ?= 2.11.0
COMPAT_VENV := .venv-airflow$(COMPAT_AIRFLOW)
COMPAT_STAMP := $(COMPAT_VENV)/.installed

.PHONY: install demo demo-inbound test test-fast test-system test-distributed test-compat lint bench emulator clean chaos mutate

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(VENV)/bin/pip install -q --disable-pip-version-check uv
	$(VENV)/bin/uv pip install -q --python $(PY) -e '.[dev]' "apache-airflow==$(AIRFLOW_VERSION)"
	@rm -f $(VENV)/.installed-* && touch $@

demo: $(STAMP)
	$(PY) -m example_dags.demo

# An inbound support line: calls come in, VapiCallEventTrigger delivers each, the DAG lands them.
demo-inbound: $(STAMP)
	$(PY) -m example_dags.demo_inbound

# Every test: all but the distributed suite in one session, then the distributed suite in a session
# of its own (its deployment and the system suite's must never be up at once).
test: $(STAMP)
	@bash .ci/system-deps.sh
	$(PY) -m pytest -q -m "not distributed" $(PYTEST_ARGS)
	@$(MAKE) --no-print-directory test-distributed

test-system: $(STAMP)
	@bash .ci/system-deps.sh
	$(PY) -m pytest -q -m "system and not distributed" tests/system $(PYTEST_ARGS)

# The distributed deployment (tests/distributed): CeleryExecutor on Redis, PostgreSQL metadata, two
# Celery workers, two triggerers, a 1,000-person campaign with a worker and a triggerer SIGKILLed.
# Its output ends with the test's summary line (test-results/distributed/summary.json).
test-distributed: $(STAMP)
	@bash .ci/system-deps.sh
	@rm -f test-results/distributed/summary.json
	@status=0; $(PY) -m pytest -q -m distributed tests/distributed $(PYTEST_ARGS) || status=$$?; \
		if [ -f test-results/distributed/summary.json ]; then cat test-results/distributed/summary.json; fi; \
		exit $$status

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not system" $(PYTEST_ARGS)

# The oldest Airflow we support, through apache-airflow-providers-common-compat, with the lowest
# version of every dependency that pyproject.toml allows: every test that does not need a real
# Airflow 3 deployment, in a venv of its own. VAPI_LOWEST_DEPS=1 makes tests/test_lower_bounds.py
# check that each direct dependency is installed at exactly its declared lower bound.
test-compat: $(COMPAT_STAMP)
	VAPI_LOWEST_DEPS=1 $(COMPAT_VENV)/bin/python -m pytest -q -m "not system" -p no:cacheprovider --ignore=tests/system --ignore=tests/distributed $(PYTEST_ARGS)

# Built anew each time pyproject.toml changes (uv would keep newer versions already installed).
# lowest-direct: our direct dependencies (runtime and extras) at their lowest allowed versions; the
# constraints pin the runtime ones to their bounds (see .ci/lowest_constraints.py for why).
$(COMPAT_STAMP): pyproject.toml .ci/lowest_constraints.py
	rm -rf $(COMPAT_VENV)
	$(PYTHON) -m venv $(COMPAT_VENV)
	@$(COMPAT_VENV)/bin/pip install -q --disable-pip-version-check uv
	$(PYTHON) .ci/lowest_constraints.py > $(COMPAT_VENV)/lowest-constraints.txt
	$(COMPAT_VENV)/bin/uv pip install -q --python $(COMPAT_VENV)/bin/python --resolution lowest-direct \
		-c $(COMPAT_VENV)/lowest-constraints.txt -e '.[dev]' "apache-airflow==$(COMPAT_AIRFLOW)"
	@touch $@

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check airflow_provider_vapi benchmarks
	$(VENV)/bin/mypy airflow_provider_vapi benchmarks

bench: $(STAMP)
	@for b in benchmarks/[!_]*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

# The fault simulation beyond CI's fixed seeds (tests/simulation): SEEDS=N random seeds from a
# random start (START=s to pick it), or SEED=n to replay one failing schedule (seeds from 100000 go
# through dag.test(), as CI's do; DAG_TEST=1 sends every seed there).
SEEDS ?= 500
chaos: $(STAMP)
	$(PY) -m tests.simulation $(if $(SEED),--seed $(SEED),--seeds $(SEEDS) $(if $(START),--start $(START))) \
		$(if $(DAG_TEST),--dag-test) --lanes $(or $(LANES),4)

# Mutation testing of the retry-safety guarantees (idempotency/, skew.py, the export window rule)
# against the fast tests: scripts/mutate.py prints the score per module and every survivor, and
# fails under 90%. Not in CI (hours on two cores). mutmut is installed here, never by the dev extra.
# MUTANTS='airflow_provider_vapi.wire.skew.*' runs only those mutants; MAX_CHILDREN=1 runs one worker.
mutate: $(STAMP)
	$(VENV)/bin/uv pip install -q --python $(PY) mutmut==3.8.1
	$(PY) scripts/mutate.py --markdown test-results/mutation.md $(if $(MAX_CHILDREN),--max-children $(MAX_CHILDREN)) $(MUTANTS)

emulator: $(STAMP)
	$(VENV)/bin/vapi-emulator

clean:
	rm -rf $(VENV) .venv-airflow* .demo .airflow-test .pytest_cache .mypy_cache .ruff_cache *.egg-info
