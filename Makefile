# Every target installs what it needs into .venv first (a fresh clone needs only python3 and make).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
PIP    := $(BIN)/python -m pip --disable-pip-version-check -q

.PHONY: install demo dev test lint format bench bench-sandbox bench-connectors bench-mirror clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install -e '.[dev]' 2>&1 | grep -v "is ignored: it is neither a file nor a directory" || true
	$(BIN)/python -c "import dagster, duckdb, pandera, xz_pipeline"
	# A DuckDB 1.x reader beside the project: the suite checks that analysts on 1.x can open the snapshot.
	test -x .venv-duckdb1/bin/python || $(PYTHON) -m venv .venv-duckdb1
	.venv-duckdb1/bin/python -m pip --disable-pip-version-check -q install 'duckdb>=1.1,<2' 'pytz' 2>&1 | grep -v "is ignored: it is neither a file nor a directory" || true
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/xz demo

dev: install
	$(BIN)/xz dev

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Two workers: most tests wait on a sandbox or a Dagster run, and the machines have two cores. A module's
# tests stay on one worker (--dist loadscope): its fixture (often a mirrored world, 20-30 s) is built once.
# The end-to-end tests (real processes, signals, daemons, whole pairs) run in `make test-integration`.
test: lint
	$(BIN)/python -m pytest -q -p no:cacheprovider -n 2 --dist loadscope --durations=15 -m "not end_to_end"

bench: bench-sandbox bench-connectors bench-mirror bench-recon bench-writeback bench-latency

bench-sandbox: install
	$(BIN)/python bench/bench_sandbox.py

bench-connectors: install
	$(BIN)/python bench/bench_connectors.py

bench-mirror: install
	$(BIN)/python bench/bench_mirror.py $(SIZES)

clean:
	rm -rf $(VENV) .venv-duckdb1 .xz .pytest_cache

.PHONY: bench-recon
bench-recon: install
	$(BIN)/python bench/bench_recon.py

.PHONY: bench-insights
bench-insights: install
	$(BIN)/python bench/bench_insights.py $(ARGS)

.PHONY: bench-latency
bench-latency: install
	$(BIN)/python bench/bench_latency.py $(ARGS)

.PHONY: bench-writeback
bench-writeback: install
	$(BIN)/python bench/bench_writeback.py $(SIZES)

.PHONY: bench-profiles
bench-profiles: install
	$(BIN)/python bench/bench_profiles.py $(SIZES)

# Each books+CRM pairing (default every one `xz demo` can play; PAIRS=a+b,c+d to pick) against one manifest.
.PHONY: bench-pairs
bench-pairs: install
	$(BIN)/python bench/bench_pairs.py $(SIZES) $(if $(PAIRS),--pairs $(PAIRS))

.PHONY: bench-reliability
bench-reliability: install
	$(BIN)/python bench/bench_reliability.py $(ARGS)

# What never runs in `make test` (xz_pipeline_tests/integration): the UI in a real browser (`xz dev` on a tiny
# sandbox, Selenium driving Debian's chromium through chromium-driver of the same version; screenshots land in
# ./.xz/integration/ui/), and the deployment pieces: Dagster on a throwaway PostgreSQL, steps on two Celery
# workers over a throwaway Redis (Debian's postgresql and redis-server). apt packages are installed once, as root.
.PHONY: test-integration
test-integration: install
	command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
	  apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium chromium-driver; }
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && command -v redis-server >/dev/null || { \
	  apt-get update -qq && apt-get install -y -qq --no-install-recommends postgresql redis-server; }
	$(BIN)/python -c "import selenium, dagster_postgres, dagster_celery, psycopg2, redis" 2>/dev/null || \
	  $(PIP) install -e '.[dev,integration,scale]' 2>&1 | grep -v "is ignored: it is neither a file nor a directory" || true
	XZ_INTEGRATION=1 $(BIN)/python -m pytest -q -p no:cacheprovider xz_pipeline_tests/integration
	$(BIN)/python -m pytest -q -p no:cacheprovider -n 2 --durations=10 -m end_to_end xz_pipeline_tests

# The fleet (issue 21): N tiny org pairs (default 200; `make bench-scale N=1000` once) mirrored in batched
# runs, one per shard of XZ_SHARD_SIZE connections; prints figures, the extrapolation to 1,000 and PASS/FAIL.
.PHONY: bench-scale
bench-scale: install
	$(BIN)/python bench/bench_scale.py --connections $(or $(N),200) $(ARGS)
