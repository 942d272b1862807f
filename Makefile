# Jifen: one command to try it, one to test it. Both create .venv and install what they need.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin

.PHONY: demo test lint install clean bench bench-quick

$(BIN)/jifen: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(BIN)/jifen

install: $(BIN)/jifen

## demo: the admin console on a fresh SQLite demo database (no Redis); prints the address and logins
demo: install
	$(BIN)/jifen console --demo

## lint: ruff and mypy
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

## test: lint, then the whole test suite on one worker per core (PostgreSQL tests are skipped if
## it is not running; each worker has its own PostgreSQL and Redis database); PYTEST_WORKERS=0
## runs it in one process
PYTEST_WORKERS ?= auto
test: lint
	$(BIN)/pytest -n $(PYTEST_WORKERS)

## bench: every benchmark at full size against its baseline (about 12 minutes; needs PostgreSQL)
bench: install
	$(BIN)/python -m bench

## bench-quick: the same at small sizes, to see the figures move
bench-quick: install
	$(BIN)/python -m bench --quick

clean:
	rm -rf $(VENV) dist build jifen-demo.db jifen-demo.db-wal jifen-demo.db-shm jifen-console-demo.db*
