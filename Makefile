# Two commands on a fresh machine with python3 and make: `make test` and `make lab`.
# Each creates .venv (python3 -m venv) and installs the project (pip install -e .[dev]) when
# .venv is missing or pyproject.toml changed since the last install.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=

NBVAL  := -o addopts="" -p nbval --nbval-lax --nbval-cell-timeout=120 \
          --nbval-kernel-startup-timeout=60 --durations=5

.PHONY: test lab lint unit notebooks bench clean help

help:
	@echo "make test   - create/refresh .venv, run ruff and the whole test suite (what CI runs)"
	@echo "make lab    - create/refresh .venv, open JupyterLab with the project's kernel"
	@echo "make bench  - run the benchmarks and print the measured ratios"
	@echo "make clean  - remove .venv and caches"

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

lint: $(STAMP)
	$(PY) -m ruff check .

unit: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

notebooks: $(STAMP)
	$(PY) -m pytest $(NBVAL) notebooks/

test: lint unit notebooks

lab: $(STAMP)
	$(VENV)/bin/jupyter lab $(if $(wildcard notebooks/00_index.ipynb),notebooks/00_index.ipynb,)

bench: $(STAMP)
	$(PY) benchmarks/engine_overhead.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
