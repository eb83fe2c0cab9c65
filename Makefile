# The two commands a newcomer needs:  `make demo`  and  `make test`.
# Both build the project virtualenv (.venv) from pinned versions first; nothing else is assumed
# beyond Python 3.11, pip and make.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv demo test lint types unit integration e2e docs bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "pip==25.3"
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[dev]"
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -c constraints.txt apache-airflow-providers-mysql
	@touch $(STAMP)

demo: venv
	$(BIN)/python demo/run_demo.py

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

types: venv
	$(BIN)/mypy

unit: venv
	$(BIN)/pytest tests/unit -q

integration: venv
	$(BIN)/pytest tests/integration -q -m "integration and not e2e"

e2e: venv
	$(BIN)/pytest tests/integration -q -m e2e

# NO_MKDOCS_2_WARNING: mkdocs-material prints an end-of-life banner on every build; not our output.
docs: venv
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet --site-dir site

test: lint types docs
	$(BIN)/pytest -q

# Each benchmark prints medians and ratios against its naive baseline; docs/performance.md has the
# numbers measured on our 2-core machines.
bench: venv
	$(BIN)/python bench/bench_simulator.py
	$(BIN)/python bench/bench_fanout.py
	$(BIN)/python bench/bench_upsert.py
	$(BIN)/python bench/bench_operator.py
	$(BIN)/python bench/bench_callbacks.py

clean:
	rm -rf $(VENV) .airflow .demo site .pytest_cache .mypy_cache .ruff_cache
