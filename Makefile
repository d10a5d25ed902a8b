# Two commands: `make demo` and `make test`. Each creates .venv and installs the project first.
VENV    ?= .venv
PYTHON  ?= python3
BIN     := $(VENV)/bin
# The CPU torch wheel where one lies on this disk (CI, the dev machines); elsewhere pip chooses.
TORCH   ?= $(firstword $(wildcard /opt/wheels/torch-*+cpu-cp311-*.whl))
PYTEST_ARGS ?=

.PHONY: demo test lint bench clean

$(BIN)/genre: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(if $(TORCH),$(BIN)/python -m pip install -q "$(TORCH)")
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(BIN)/genre

demo: $(BIN)/genre
	$(BIN)/genre demo

test: $(BIN)/genre
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest -q $(PYTEST_ARGS)

bench: $(BIN)/genre
	$(BIN)/python bench/extract.py
	$(BIN)/python bench/train.py
	$(BIN)/python bench/query.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
