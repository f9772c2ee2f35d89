# Two entry points for a fresh machine: `make demo` and `make test` (see README).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: demo test lint services bench clean tools

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $@

demo: $(STAMP)
	$(PY) -m dev.demo

services: $(STAMP)
	$(PY) -m dev.pg_dev up
	$(PY) -m dev.kafka_dev up

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

# curl: the README's API walk-through (tests/e2e/test_readme.py) runs it as written.
tools:
	@command -v curl >/dev/null || (apt-get update -qq && apt-get install -y -qq curl)

test: services lint tools
	$(PY) -m pytest

bench: services
	$(PY) -m bench

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache
