# The two commands a newcomer needs:  `make demo`  and  `make test`.
# Both build the project virtualenv (.venv) from pinned versions first; nothing else is assumed
# beyond Python 3.11, pip and make.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv demo test lint types unit integration e2e docs bench clean

venv: $(STAMP)

# Airflow's MySQL provider (for the MariaDB tests) depends on the mysqlclient driver, which pip
# builds from source against the MariaDB/MySQL client headers (Debian: libmariadb-dev, pkg-config).
# Without them the provider is left out, and the MariaDB tests with it; .ci/run installs them.
MYSQL_HEADERS := $(shell (pkg-config --exists mysqlclient || pkg-config --exists mariadb) 2>/dev/null && echo yes)

# `pip check` last: the environment must be consistent, every declared dependency installed.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -c constraints.txt "pip==25.3"
	$(BIN)/pip install -q -c constraints.txt -e ".[dev]"
ifeq ($(MYSQL_HEADERS),yes)
	$(BIN)/pip install -q -c constraints.txt apache-airflow-providers-mysql
else
	@echo "note: no MariaDB/MySQL client headers found: Airflow's MySQL provider and the MariaDB tests are skipped"
endif
	$(BIN)/pip check
	@touch $(STAMP)

demo: venv
	$(BIN)/python demo/run_demo.py

# Ruff's Airflow rules (AIR) include preview-only checks such as AIR202, hence --preview.
lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff check --preview --select AIR .
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
	$(BIN)/python bench/bench_trade_nos.py
	$(BIN)/python bench/bench_callbacks.py
	$(BIN)/python bench/bench_create.py
	$(BIN)/python bench/bench_budget.py
	$(BIN)/python bench/bench_lineage.py     # ~3 min: 10,000-trade syncs, OpenLineage on/off
	$(BIN)/python bench/bench_celery.py      # ~10 min: a Celery deployment, 6 runs
	$(BIN)/python bench/bench_triggerer.py   # ~20 min: 2 x 500 deferred sensors

clean:
	rm -rf $(VENV) .airflow .demo site .pytest_cache .mypy_cache .ruff_cache
