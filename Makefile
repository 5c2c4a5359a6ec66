# Everything installs into .venv from PyPI; nothing depends on what was installed by hand.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint typecheck bench docs clean

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
	$(BIN)/ruff check sidecar tests bench
	$(BIN)/ruff format --check sidecar tests bench
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

# Slow benchmarks and soak tests, kept out of the default suite: the slow pytest marker, then
# bench/run.py (the sidecar beside nginx on loopback; writes bench/results.json, prints a table).
# nginx, wrk and openssl come from Debian's packages when missing.
bench: $(STAMP)
	@command -v nginx >/dev/null && command -v wrk >/dev/null && command -v openssl >/dev/null || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx wrk openssl; }
	$(BIN)/python -c 'import uvloop' 2>/dev/null || $(BIN)/pip install --quiet -e '.[fast]'
	$(BIN)/pytest -q -p no:cacheprovider -m slow
	$(BIN)/python bench/run.py $(BENCH_ARGS)

# The documentation site (mkdocs.yml, docs/*.md) into site/; --strict fails on a broken link or a
# page missing from the nav. Installs the docs extra into .venv when it is not there yet.
docs:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -c 'import mkdocs, material' 2>/dev/null || $(BIN)/pip install --quiet -e '.[docs]'
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

clean:
	rm -rf $(VENV) build site *.egg-info .mypy_cache .ruff_cache
