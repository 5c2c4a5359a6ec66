# Everything installs into .venv from PyPI; nothing depends on what was installed by hand.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint typecheck bench soak docs clean

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
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

# Slow benchmarks and soak tests, kept out of the default suite.
bench: $(STAMP)
	$(BIN)/pytest -q -p no:cacheprovider -m slow

# The reliability suite at full size (tests/reliability: >= 10,000 generated requests, 1,000
# stalled and 1,000 keep-alive connections, 100,000 requests); `make test` runs it short. The
# figures land in soak-figures.json (the table in docs/security.md is copied from it).
soak: $(STAMP)
	rm -f soak-figures.json
	SIDECAR_SOAK=1 $(BIN)/pytest -q -p no:cacheprovider -s tests/reliability
	cat soak-figures.json

# The documentation site (mkdocs.yml, docs/*.md) into site/; --strict fails on a broken link or a
# page missing from the nav. Installs the docs extra into .venv when it is not there yet.
docs:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -c 'import mkdocs, material' 2>/dev/null || $(BIN)/pip install --quiet -e '.[docs]'
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

clean:
	rm -rf $(VENV) build site *.egg-info .mypy_cache .ruff_cache
