# Jifen: one command to try it, one to test it. Both create .venv; `make demo` installs what the
# console needs, `make test` the test tools too (pytest, ruff, mypy, Playwright...).
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin

.PHONY: demo test lint install install-test clean bench bench-quick

$(BIN)/jifen: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	touch $(BIN)/jifen

# Marks a venv that has the test tools as well (the `test` extra of pyproject.toml).
$(VENV)/.test-tools: $(BIN)/jifen
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

## install: .venv with Jifen and what it runs on; install-test: the test tools too
install: $(BIN)/jifen
install-test: $(VENV)/.test-tools

## demo: the admin console on a SQLite demo database (no Redis); prints the address and logins.
## The database is kept between starts: FRESH=1 rebuilds it; PORT=8080 serves on another port.
PORT  ?=
FRESH ?=
DEMO_FRESH = $(filter-out 0 no false,$(FRESH))
demo: install
	@echo "make demo: the console on port $(or $(PORT),5000) (make demo PORT=5050 for another);" \
	  "$(if $(DEMO_FRESH),building the demo database anew,the demo database is kept between starts (make demo FRESH=1 rebuilds it))"
	$(BIN)/jifen console --demo $(if $(PORT),--port $(PORT)) $(if $(DEMO_FRESH),--fresh)

## lint: ruff and mypy
lint: install-test
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
