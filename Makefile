# ntpmon developer entry points. Every target installs what it needs first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: install generate lint format test bench run clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

generate: install
	$(PY) scripts/generate.py

lint: install
	$(VENV)/bin/ruff check src tests bench scripts
	$(VENV)/bin/ruff format --check src tests bench scripts

format: install
	$(VENV)/bin/ruff format src tests bench scripts
	$(VENV)/bin/ruff check --fix src tests bench scripts

test: install
	$(PY) -m pytest -n 2 $(PYTEST_ARGS)

bench: install
	$(PY) bench/run_all.py $(BENCH)

run: install
	$(PY) scripts/run_stack.py $(if $(DATABASE_DSN),--database-dsn '$(DATABASE_DSN)')

clean:
	rm -rf $(VENV) build .pytest_cache .ruff_cache
