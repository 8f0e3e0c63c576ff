# The README's commands. `make demo` and `make test` do all set-up on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)

.PHONY: setup demo test unit integration lint format stack-up stack-down stack-status bench clean \
	pglite promtool browser

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $(STAMP)

setup: $(STAMP)

demo: setup            ## simulated plant through the whole pipeline, alarms on screen
	$(BIN)/chemwatch demo

test: setup lint pglite promtool browser  ## the full suite (unit + integration) against the real services
	$(BIN)/chemwatch stack up
	@# Two test processes, a file each at a time (tests share only the services, each in
	@# its own topics, MQTT prefix and schema); then the rate and fault-timing tests
	@# (marked solo) alone on the CPU. Both parts always run; either failing fails.
	$(BIN)/pytest -n 2 --dist loadfile -m "not solo"; parallel=$$?; \
	$(BIN)/pytest -m solo; solo=$$?; \
	exit $$(( parallel || solo ))

unit: setup            ## unit tests only: nothing needs to run
	$(BIN)/pytest -m "not integration"

integration: setup pglite promtool browser
	$(BIN)/chemwatch stack up
	$(BIN)/pytest -m integration

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy common

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

stack-up: setup
	$(BIN)/chemwatch stack up

stack-down: setup
	$(BIN)/chemwatch stack down

stack-status: setup
	$(BIN)/chemwatch stack status

bench: setup stack-up  ## benchmarks of every area (tables; each also has --json)
	$(BIN)/chemwatch bench detectors
	$(BIN)/chemwatch bench storage
	$(BIN)/chemwatch bench ingest
	$(BIN)/chemwatch bench alerting

clean: stack-down
	rm -rf .chemwatch

# TimescaleDB cannot be installed here: its migrations and the dashboards' queries are
# proven on PGlite + TimescaleDB (WASM, run by Node) from deploy/pglite.
PGLITE := deploy/pglite/node_modules/.package-lock.json
$(PGLITE): deploy/pglite/package.json deploy/pglite/package-lock.json
	@command -v npm >/dev/null || { echo "npm not found: the TimescaleDB (PGlite) tests will skip"; exit 0; }; \
	cd deploy/pglite && npm ci --no-audit --no-fund --loglevel=error
pglite: $(PGLITE)

# promtool (Debian package `prometheus`) checks every PromQL expression of the dashboards.
promtool:
	@command -v promtool >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus; \
	  else echo "promtool missing: run 'apt-get install prometheus' as root (the PromQL test skips)"; fi; }
# System packages of the alerting tests (needs root): headless Chromium for the console
# test (Debian's packages, never a downloaded browser) and Prometheus Alertmanager.
browser:
	@{ test -x /usr/bin/chromium && test -x /usr/bin/prometheus-alertmanager; } || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    chromium chromium-driver prometheus-alertmanager; }
