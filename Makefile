# Everything installs into .venv from PyPI; nothing depends on what was installed by hand.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo demo-serve test test-fast prerequisites test-lowest lint typecheck bench soak docs clean image-test

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

# The walk-through, then exit; demo-serve keeps the sidecar and the exchange up until Ctrl-C.
demo: $(STAMP)
	$(BIN)/gate-sidecar demo --once

demo-serve: $(STAMP)
	$(BIN)/gate-sidecar demo

# The whole suite needs node+npm, a JDK and curl (real clients) and PyPI/npm over the network:
# tests/prerequisites.py installs the tools from Debian's packages when it may (root, apt-get),
# else stops within seconds listing what is missing. SIDECAR_NO_INSTALL=1 never installs.
prerequisites:
	@$(PYTHON) tests/prerequisites.py --install

test: prerequisites $(STAMP) lint typecheck
	$(BIN)/pytest -q -p no:cacheprovider

# In-process tests only (no server, tool, other process or network: marker `external`, set by
# tests/conftest.py); needs nothing beyond Python. See docs/development.md for its figures.
# Three workers on two cores: much of the suite waits on sockets and real deadlines, not the CPU.
# One file per worker, files in collection order (xdist would otherwise start the files with the
# most tests first and the dead-man switch's six slow ones last, alone). Bytecode is cached even
# where PYTHONDONTWRITEBYTECODE is set: without it each worker compiles every module anew.
test-fast: $(STAMP)
	PYTHONDONTWRITEBYTECODE= $(BIN)/pytest -q -p no:cacheprovider -m 'not slow and not image and not external' \
		-n 3 --dist loadfile --no-loadscope-reorder

lint: $(STAMP)
	$(BIN)/ruff check sidecar tests bench
	$(BIN)/ruff format --check sidecar tests bench
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

# The floors in pyproject.toml, proven: a second venv where uv resolves every direct dependency
# to the lowest release pyproject.toml allows, then the same lint, typecheck and default tests as
# `make test`, except ccxt's. ccxt==4.5.90 pins its own dependencies (aiohttp>=3.14.3,
# cryptography 50, multidict 6.9.1, ...) far above the floors, so it cannot be installed beside
# them: it is left out of the resolution and its tests (marker `ccxt`) run in `make test` only.
# The check of the client table in docs/clients.md needs every client's row, so it is marked too.
LOWEST       := .venv-lowest
LOWEST_BIN   := $(LOWEST)/bin
LOWEST_STAMP := $(LOWEST)/.installed

$(LOWEST_STAMP): pyproject.toml
	rm -rf $(LOWEST)
	$(PYTHON) -m venv $(LOWEST)
	$(LOWEST_BIN)/pip install --quiet --upgrade pip 'uv>=0.10'
	echo ccxt > $(LOWEST)/exclude.txt
	$(LOWEST_BIN)/uv pip install --quiet --python $(LOWEST_BIN)/python \
		--resolution lowest-direct --excludes $(LOWEST)/exclude.txt -e '.[test]'
	touch $@

test-lowest: $(LOWEST_STAMP)
	$(LOWEST_BIN)/uv pip list --python $(LOWEST_BIN)/python
	$(LOWEST_BIN)/ruff check sidecar tests
	$(LOWEST_BIN)/ruff format --check sidecar tests
	$(LOWEST_BIN)/lint-imports
	MYPY_CACHE_DIR=$(LOWEST)/.mypy_cache $(LOWEST_BIN)/mypy
	$(LOWEST_BIN)/pytest -q -p no:cacheprovider -m 'not slow and not ccxt and not image'

# Slow benchmarks and soak tests, kept out of the default suite: the slow pytest marker, then
# bench/run.py (the sidecar beside nginx and a Go signing proxy on loopback; writes
# bench/results.json, prints a table). nginx, wrk, openssl, Go (golang-go, which builds
# bench/goproxy) and valgrind (bench/path.py's instruction count) come from Debian's packages
# when missing.
bench: $(STAMP)
	@command -v nginx >/dev/null && command -v wrk >/dev/null && command -v openssl >/dev/null \
		&& command -v go >/dev/null && command -v valgrind >/dev/null || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx wrk openssl golang-go valgrind; }
	$(BIN)/python -c 'import uvloop' 2>/dev/null || $(BIN)/pip install --quiet -e '.[fast]'
	$(BIN)/pytest -q -p no:cacheprovider -m slow
	$(BIN)/python bench/run.py $(BENCH_ARGS)

# The reliability suite at full size (tests/reliability: >= 10,000 generated requests, 1,000
# stalled and 1,000 keep-alive connections, 100,000 requests); `make test` runs it short. The
# figures land in soak-figures.json (the table in docs/security.md is copied from it).
soak: $(STAMP)
	rm -f soak-figures.json
	SIDECAR_SOAK=1 $(BIN)/pytest -q -p no:cacheprovider -s tests/reliability
	cat soak-figures.json

# The container image built with podman and run: read-only, non-root, /readyz, one signed request
# to the test exchange, stopped within its drain time (tests/test_image.py, marker `image`). Where
# the Dockerfile's base cannot be pulled (no Docker Hub) it builds on a Debian bookworm base made
# with mmdebstrap. Podman here needs runc, cgroupfs and ulimits under the host's hard limits
# (containers.conf through CONTAINERS_CONF); the build mounts the host's CA bundle (a
# TLS-inspecting proxy re-signs PyPI). Both are harmless elsewhere.
PODMAN_CONF := $(CURDIR)/.cache/podman/containers.conf
IMAGE_BUILD_FLAGS ?= -v /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro

image-test: $(STAMP)
	@command -v podman >/dev/null && command -v runc >/dev/null && command -v mmdebstrap >/dev/null || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman runc mmdebstrap; }
	mkdir -p $(dir $(PODMAN_CONF))
	$(BIN)/python -c 'import resource as r; \
		lim = lambda k, cap: min(cap, r.getrlimit(k)[1] if r.getrlimit(k)[1] >= 0 else cap); \
		n, u = lim(r.RLIMIT_NOFILE, 65536), lim(r.RLIMIT_NPROC, 4096); \
		print(f"[containers]\ndefault_ulimits = [\"nofile={n}:{n}\", \"nproc={u}:{u}\"]\n" \
		      "[engine]\nruntime = \"runc\"\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"")' \
		> $(PODMAN_CONF)
	start=$$(date +%s); \
	env CONTAINERS_CONF=$(PODMAN_CONF) IMAGE_BUILD_FLAGS='$(IMAGE_BUILD_FLAGS)' \
		$(BIN)/pytest -q -p no:cacheprovider -m image -s tests/test_image.py && \
	echo "make image-test: $$(( $$(date +%s) - start )) s"

# The documentation site (mkdocs.yml, docs/*.md) into site/; --strict fails on a broken link or a
# page missing from the nav. Installs the docs extra into .venv when it is not there yet.
docs:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -c 'import mkdocs, material' 2>/dev/null || $(BIN)/pip install --quiet -e '.[docs]'
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

clean:
	rm -rf $(VENV) $(LOWEST) build site *.egg-info .mypy_cache .ruff_cache
