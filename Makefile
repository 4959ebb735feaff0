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
# notebooks executed by `make test`: the teaching notebooks, the exercises as handed out, and
# (in the repository, not in a course bundle) the solutions
NOTEBOOKS := notebooks/ exercises/ $(wildcard solutions)
# in a course bundle there is no tests/ nor grader/: those stages only run in the repository
REPO   := $(and $(wildcard tests),$(wildcard grader))
PROGRESS := $${TMPDIR:-/tmp}/backfill-lab-test-progress.json

.PHONY: test lab lint types unit notebooks assign-check grade release bench clean help lock \
        orchestrators

help:
	@echo "make test    - create/refresh .venv, run ruff and every test (what CI runs)"
	@echo "make lab     - create/refresh .venv, start JupyterLab (127.0.0.1:$$LAB_PORT, default 8888) at notebooks/00_index.ipynb"
	@echo "make grade   - grade the bundled sample submissions, print the gradebook and the class report's path"
	@echo "make release - build the student bundle in dist/bundle (no solutions, no key)"
	@echo "make bench   - run the benchmarks and print the measured ratios"
	@echo "make orchestrators - run the plan exports on real dbt, SQLMesh, Dagster and Airflow"
	@echo "make lock    - refresh constraints.txt (the exact versions) from pyproject's ranges"
	@echo "make clean   - remove .venv and caches"

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

# refresh constraints.txt: resolve pyproject's ranges afresh in a throw-away venv, pin what came
lock:
	rm -rf build/lock-venv && $(PYTHON) -m venv build/lock-venv
	build/lock-venv/bin/pip install --quiet --disable-pip-version-check -e '.[dev]'
	{ sed -n '1,3p' constraints.txt; build/lock-venv/bin/pip freeze --exclude-editable \
	  | grep -v '^#'; } > constraints.txt.new && mv constraints.txt.new constraints.txt
	rm -rf build/lock-venv

lint: $(STAMP)
	$(PY) -m ruff check .

types: $(STAMP)
	$(if $(REPO),$(PY) -m mypy,@echo "no grader/ here: skipping mypy")

unit: $(STAMP)
	$(if $(REPO),$(PY) -m pytest $(PYTEST_ARGS),@echo "no tests/ here: skipping the unit tests")

notebooks: $(STAMP)
	BACKFILL_LAB_PROGRESS=$(PROGRESS) $(PY) -m pytest $(NBVAL) $(NOTEBOOKS)

assign-check: $(STAMP)
	$(if $(REPO),$(PY) -m grader assign --check,@true)

test: lint types assign-check unit notebooks

lab: $(STAMP)
	$(PY) tools/lab.py

grade: $(STAMP)
	$(PY) -m grader grade tests/submissions --out build/grades
	@echo "open file://$(abspath build/grades/report.html) (each learner's: build/grades/<name>.html)"

release: $(STAMP)
	$(PY) -m grader release --out dist/bundle

bench: $(STAMP)
	$(PY) benchmarks/engine_overhead.py
	$(PY) benchmarks/write_paths.py
	$(PY) benchmarks/judge_parts.py
	$(PY) benchmarks/grader_throughput.py

# the exports proven on the real tools: a venv per tool in $${XDG_CACHE_HOME:-~/.cache}/safe-backfills
# (built once, reused), a staged outage, the exported commands run as printed, tables compared
orchestrators: $(STAMP)
	$(PY) orchestrators/run.py $(TOOLS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache *.egg-info build dist
