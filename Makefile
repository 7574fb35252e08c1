# The two commands of the README: `make demo` and `make test`. Both set up a fresh machine first.
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup demo test lint unit e2e bench

setup:
	bash scripts/bootstrap.sh

lint: setup
	$(BIN)/ruff check operator tests bench
	$(BIN)/ruff format --check operator tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

demo: setup
	$(BIN)/python -m slimguard_testbed.demo

test: lint
	$(BIN)/pytest -p no:cacheprovider

unit: setup
	$(BIN)/pytest tests/unit -q

e2e: setup
	$(BIN)/pytest tests/e2e

bench: setup
	$(BIN)/python bench/audit_scale.py
