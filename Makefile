# The two commands of README.md: `make run` and `make test`. Both make .venv
# and install the pinned requirements first; nothing else is needed.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip --disable-pip-version-check --quiet

.PHONY: run test lint format migrate seed worker beat clean screenshots

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
	$(BIN)/honcho --procfile Procfile.dev start || true

## test: the whole test suite (SQLite and the embedded broker unless DATABASE_URL / CELERY_BROKER_URL are set)
test: $(VENV)/.test
	$(BIN)/pytest $(PYTEST_ARGS)

## lint: ruff (lint and format check) and mypy on payments/
lint: $(VENV)/.test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(VENV)/.test
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

migrate: $(VENV)/.runtime
	$(BIN)/python manage.py migrate

seed: $(VENV)/.runtime
	$(BIN)/python manage.py seed_demo

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache

## screenshots: rebuild docs/screenshots/ from a demo shop with a year of history (needs chromium)
screenshots: $(VENV)/.test
	$(BIN)/python docs/screenshots.py
