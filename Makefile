# Everything installs into .venv from PyPI; nothing depends on what was installed by hand.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint typecheck bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/gate-sidecar demo

test: $(STAMP) lint typecheck
	$(BIN)/pytest -q -p no:cacheprovider

lint: $(STAMP)
	$(BIN)/ruff check sidecar tests
	$(BIN)/ruff format --check sidecar tests

typecheck: $(STAMP)
	$(BIN)/mypy

# Slow benchmarks and soak tests, kept out of the default suite.
bench: $(STAMP)
	$(BIN)/pytest -q -p no:cacheprovider -m slow

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache
