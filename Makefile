# Two commands: `make demo` and `make test`. Each creates .venv and installs the project first.
VENV    ?= .venv
PYTHON  ?= python3
BIN     := $(VENV)/bin
# The CPU torch wheel where one lies on this disk (CI, the dev machines); elsewhere pip chooses.
TORCH   ?= $(firstword $(wildcard /opt/wheels/torch-*+cpu-cp311-*.whl))
PYTEST_ARGS ?=
# The real sonic-annotator and Vamp plugins for the live tests (tests/test_sonic_live.py): test
# tools in a shared/ folder beside the checkout, or wherever GENRE_SHARED points. Where they
# exist, `make test` installs their Debian libraries (needs root; else the live tests skip,
# except under CI=true) and runs the tests with the host on PATH and VAMP_PATH set.
GENRE_SHARED ?= ../shared
VAMP_DIR := $(abspath $(GENRE_SHARED))/vamp
ifneq ($(wildcard $(VAMP_DIR)/bin/sonic-annotator),)
test: export PATH := $(VAMP_DIR)/bin:$(PATH)
test: export VAMP_PATH := $(VAMP_DIR)/plugins
endif
# `make test-floor`: a second venv with every direct dependency at its declared floor (torch: the
# wheel above), running the CLI and the non-snapshot TUI tests.
FLOOR_VENV  ?= .venv-floor
FLOOR_TESTS ?= tests/test_cli_foundation.py tests/test_config.py tests/test_fetch.py \
	tests/test_fetch_limits.py tests/test_fetch_messages.py tests/test_doctor.py tests/test_query.py \
	tests/test_train_cli.py tests/test_features_cli.py tests/test_tui.py

.PHONY: demo test test-floor lint bench clean

$(BIN)/genre: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(if $(TORCH),$(BIN)/python -m pip install -q "$(TORCH)")
	$(BIN)/python -m pip install -q -e ".[dev,cluster]"
	touch $(BIN)/genre

demo: $(BIN)/genre
	$(BIN)/genre demo

test: $(BIN)/genre
	$(if $(wildcard $(VAMP_DIR)/install-runtime.sh),$(VAMP_DIR)/install-runtime.sh || echo "sonic-annotator's libraries are missing: its live tests will skip")
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest -q $(PYTEST_ARGS)

test-floor:
	test -x $(FLOOR_VENV)/bin/python || $(PYTHON) -m venv $(FLOOR_VENV)
	$(FLOOR_VENV)/bin/python -m pip install -q --upgrade pip
	$(if $(TORCH),$(FLOOR_VENV)/bin/python -m pip install -q "$(TORCH)")
	$(FLOOR_VENV)/bin/python .ci/floors.py > $(FLOOR_VENV)/floors.txt
	$(FLOOR_VENV)/bin/python -m pip install -q -c $(FLOOR_VENV)/floors.txt -e ".[dev]"
	$(FLOOR_VENV)/bin/python .ci/floors.py --check
	$(FLOOR_VENV)/bin/pytest -q -p no:cacheprovider $(FLOOR_TESTS)

bench: $(BIN)/genre
	$(BIN)/python bench/extract.py
	$(BIN)/python bench/train.py
	$(BIN)/python bench/query.py
	$(BIN)/python bench/startup.py
	$(BIN)/python bench/musicnn.py
	$(BIN)/python bench/cluster.py

clean:
	rm -rf $(VENV) $(FLOOR_VENV) build *.egg-info .pytest_cache .ruff_cache
