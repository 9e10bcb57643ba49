# Every target sets up what it needs on a fresh machine (only Python 3.11+ is assumed) and is
# quick once .venv is installed. AIRFLOW_VERSION picks the Airflow the venv is built against.
SHELL := /bin/bash
PYTHON ?= python3
AIRFLOW_VERSION ?= 3.3.2
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(AIRFLOW_VERSION)

.PHONY: install demo test test-fast lint bench emulator clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(VENV)/bin/pip install -q --disable-pip-version-check uv
	$(VENV)/bin/uv pip install -q --python $(PY) -e '.[dev]' "apache-airflow==$(AIRFLOW_VERSION)"
	@rm -f $(VENV)/.installed-* && touch $@

demo: $(STAMP)
	$(PY) -m example_dags.demo

test: $(STAMP)
	$(PY) -m pytest -q $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not system" $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check airflow_provider_vapi
	$(VENV)/bin/mypy airflow_provider_vapi

bench: $(STAMP)
	@for b in benchmarks/[!_]*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

emulator: $(STAMP)
	$(VENV)/bin/vapi-emulator

clean:
	rm -rf $(VENV) .demo .airflow-test .pytest_cache .mypy_cache .ruff_cache *.egg-info
