# The two commands of the README: `make run` and `make test`. Only python3 and make needed.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-dev

.PHONY: run test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

## run: migrate the database (SQLite in instance/ unless DATABASE_URL), seed the demo on first start, serve on :5000
run: $(STAMP)
	$(BIN)/partnernet db upgrade
	$(BIN)/partnernet demo --if-empty
	$(BIN)/partnernet serve --host 127.0.0.1 --port 5000

## test: the whole suite (SQLite by default; PostgreSQL/Redis when DATABASE_URL/REDIS_URL are set)
test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check partnernet tests $(wildcard benchmarks)
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
