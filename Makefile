# The two commands of README.md: `make run` and `make test`. Both make .venv
# and install the pinned requirements first; nothing else is needed.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip --disable-pip-version-check --quiet

BENCH_VENV := .venv-bench

.PHONY: run test lint format migrate seed worker beat clean screenshots bench soak

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.runtime: requirements.txt | $(BIN)/python
	$(PIP) install -r requirements.txt
	touch $@

$(VENV)/.test: requirements.txt requirements-test.txt | $(BIN)/python
	$(PIP) install -r requirements-test.txt
	touch $@ $(VENV)/.runtime

## run: serve the site with demo data, a Celery worker and beat (Ctrl-C stops all)
run: $(VENV)/.runtime
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py seed_demo --if-empty
	PAYMENTS_LOCAL_DAY_SECONDS=$${PAYMENTS_LOCAL_DAY_SECONDS:-10} $(BIN)/honcho --procfile Procfile.dev start || true

## test: the whole test suite (SQLite and the embedded broker unless DATABASE_URL / CELERY_BROKER_URL are set)
test: $(VENV)/.test
	$(BIN)/pytest $(PYTEST_ARGS)

## lint: ruff (lint and format check), mypy on payments/ and the shared kernel, and the
## import contracts of docs/architecture.md (lint-imports: layers, no import circle)
lint: $(VENV)/.test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-logo

format: $(VENV)/.test
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

migrate: $(VENV)/.runtime
	$(BIN)/python manage.py migrate

seed: $(VENV)/.runtime
	$(BIN)/python manage.py seed_demo

clean:
	rm -rf $(VENV) $(BENCH_VENV) var .pytest_cache .mypy_cache .ruff_cache .import_linter_cache

## screenshots: rebuild docs/screenshots/ from a demo shop with a year of history (needs chromium)
screenshots: $(VENV)/.test
	$(BIN)/python docs/screenshots.py

## bench: the six benchmarks on PostgreSQL and Redis, in a virtualenv of their own
## (BENCH_DATABASE_URL, default marketplace_bench, is wiped; BENCH_ARGS=--quick for a smoke run)
$(BENCH_VENV)/.installed: requirements.txt requirements-test.txt requirements-bench.txt
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip --disable-pip-version-check --quiet install -r requirements-bench.txt
	touch $@

bench: $(BENCH_VENV)/.installed
	$(BENCH_VENV)/bin/python -m bench $(BENCH_ARGS)

## soak: the fault tests (tests/faults) with 60 s of load, on PostgreSQL and Redis, then the
## money state machine with 2,000 examples
SOAK_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/marketplace_soak
soak: $(VENV)/.test
	DATABASE_URL=$(SOAK_DATABASE_URL) CELERY_BROKER_URL=redis://127.0.0.1:6379/7 \
	CELERY_RESULT_BACKEND=redis://127.0.0.1:6379/8 REQUIRE_SERVICES=1 SOAK_SECONDS=60 \
	$(BIN)/pytest tests/faults -m faults $(PYTEST_ARGS)
	DATABASE_URL=$(SOAK_DATABASE_URL) REQUIRE_SERVICES=1 STATE_MACHINE_EXAMPLES=2000 \
	$(BIN)/pytest tests/payments/test_money_state_machine.py $(PYTEST_ARGS)
