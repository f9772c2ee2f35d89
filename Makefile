# Two entry points for a fresh machine: `make demo` and `make test` (see README).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

# The official AsyncAPI parser (node), pinned by dev/asyncapi/package-lock.json.
ASYNCAPI_PARSER := dev/asyncapi/node_modules/@asyncapi/parser/package.json

.PHONY: demo test test-repeat lint services cluster bench chaos container-deps images container-test clean \
	asyncapi-parser kcat faketime patroni tools chromium console-charts docs

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $@

demo: $(STAMP)
	$(PY) -m dev.demo

# The docs set: reference pages regenerated from the code, then built strict (broken links fail).
docs: $(STAMP)
	$(PY) -m dev.docs_gen
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

services: $(STAMP)
	$(PY) -m dev.pg_dev up
	$(PY) -m dev.kafka_dev up

lint: $(STAMP) $(ASYNCAPI_PARSER)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-cache
	node dev/asyncapi/validate.mjs asyncapi.yaml

$(ASYNCAPI_PARSER): dev/asyncapi/package-lock.json
	cd dev/asyncapi && npm ci --ignore-scripts --no-audit --no-fund
	touch $@

asyncapi-parser: $(ASYNCAPI_PARSER)

# kcat reads the events topic in the tests as any other Kafka client would (Debian package).
kcat:
	command -v kcat >/dev/null || { apt-get update -qq && apt-get install -y -qq kcat; }

# faketime runs one instance with its wall clock an hour behind (tests/faults/test_clock_skew.py).
faketime:
	command -v faketime >/dev/null || { apt-get update -qq && apt-get install -y -qq faketime; }

# The console's charting library, pinned by dev/console/package-lock.json; the copy served
# from entrypoints/console/static/ is checked against it (tests/unit/test_console_vendored_chart.py).
CONSOLE_CHARTS := dev/console/node_modules/chart.js/package.json

$(CONSOLE_CHARTS): dev/console/package-lock.json
	cd dev/console && npm ci --ignore-scripts --no-audit --no-fund
	touch $@

console-charts: $(CONSOLE_CHARTS)

# chromium + chromedriver: the console's browser tests drive a real browser (Selenium).
chromium:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null \
	  || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver)

# Patroni over etcd: the PostgreSQL cluster with failover of dev/patroni_dev.py and of
# tests/faults/test_primary_failover.py (Debian packages).
patroni:
	@command -v patroni >/dev/null && command -v etcd >/dev/null \
	  || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq patroni etcd-server; }

# curl: the HTTP quickstart's walk-through (tests/e2e/test_docs.py) runs it as written.
tools:
	@command -v curl >/dev/null || (apt-get update -qq && apt-get install -y -qq curl)

# Two phases (docs/testing.md): the suite in PYTEST_WORKERS processes, one test file per worker
# at a time (a file's module fixtures, e.g. a private cluster, start once), in collection order
# (xdist would otherwise hand out the files with the most tests first, leaving the slow fault
# tests, one or two per file, for the end); then the tests
# marked `serial` (bounds on time, failover, budgets) alone on the machine, one after another.
PYTEST_WORKERS ?= 4
test: services lint kcat faketime patroni tools chromium console-charts
	$(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder \
	  -m 'not containers and not serial'
	$(PY) -m pytest -m 'serial and not containers'

# The same tests N times in a row (pytest-repeat), stopping at the first failure: a flaky test
# shows itself here instead of in CI. E.g. make test-repeat TESTS=tests/faults N=10
TESTS ?= tests/faults
N ?= 10
test-repeat: services kcat faketime patroni
	$(PY) -m pytest -x --count $(N) $(TESTS)

bench: services
	$(PY) -m bench

# The 3-node KRaft cluster (RF 3, min.insync.replicas 2) on ports 19192-19197.
cluster: $(STAMP)
	$(PY) -m dev.kafka_dev up --brokers 3

# 3 brokers, 3 serve, a durable 2-node Patroni cluster, faults at random moments (a broker, a
# serve killed, the primary restarted, the primary killed, a serve frozen, a serve an hour behind
# under faketime); CHAOS_SECONDS of load.
CHAOS_SECONDS ?= 60
chaos: services kcat faketime patroni
	$(PY) -m bench.chaos --seconds $(CHAOS_SECONDS)

# podman (runc: this host's cgroups v1 are refused by crun), podman-compose and debootstrap
# from Debian's packages, installed when missing.
container-deps:
	@command -v podman >/dev/null && command -v podman-compose >/dev/null \
	  && command -v runc >/dev/null && command -v debootstrap >/dev/null \
	  || (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
	      podman podman-compose runc debootstrap)

# The images, built locally from a debootstrap base cached under .cache/containers/.
images: $(STAMP) container-deps
	$(PY) -m dev.containers build

# The compose stack (3 SASL_SSL brokers, TLS-only PostgreSQL, a STARTTLS mail server, 2 serve
# replicas in production) built, started, one purchase
# and one redemption driven through it; bounded so that CI cannot hang on it.
container-test: $(STAMP) container-deps
	timeout 2400 $(PY) -m pytest -m containers tests/containers -q

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache
