# The two commands a newcomer needs: `make demo` and `make test`. `make help` lists the rest.
SHELL := /bin/bash
.DEFAULT_GOAL := help
UV ?= $(shell command -v uv 2>/dev/null || echo "$(HOME)/.local/bin/uv")
# Two workers: most tests wait on real services, so two share the 2 cores well (see conftest.py).
PYTEST_ARGS ?= -n 2

.PHONY: help
help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

.PHONY: setup
setup: ## Install uv if missing, the locked Python packages, the DSFR assets and Chromium
	@command -v uv >/dev/null 2>&1 || [ -x "$(HOME)/.local/bin/uv" ] || python3 -m pip install --user --quiet uv
	$(UV) sync --frozen --compile-bytecode
	@# Bytecode written once: each of the suite's hundreds of service processes would compile
	@# every module it imports again where PYTHONDONTWRITEBYTECODE is set (~1 s each).
	@$(UV) run python -m compileall -q -j 0 contracts plumbing services loadtests tests deploy
	@[ -d node_modules/@gouvfr/dsfr/dist ] || npm ci --no-audit --no-fund --ignore-scripts
	@bash scripts/ensure-system-packages.sh

.PHONY: demo
demo: setup ## Run the whole system on embedded defaults until Ctrl-C
	$(UV) run python -m plumbing.demo

.PHONY: test
test: setup ## Run the whole test suite against the real broker, database, SMTP and browser
	$(UV) run python -m contracts.generate --check
	$(UV) run python -m plumbing.openapi --check
	$(UV) run pytest $(PYTEST_ARGS)

.PHONY: lint
lint: setup ## ruff, mypy (strict on contracts, plumbing and every domain.py), import-linter
	$(UV) run ruff check .
	$(UV) run ruff format --check .
	$(UV) run mypy
	$(UV) run lint-imports

.PHONY: contracts
contracts: ## Regenerate JSON Schemas and the AsyncAPI document from the models
	$(UV) run python -m contracts.generate

.PHONY: openapi
openapi: ## Regenerate each service's OpenAPI document (services/<service>/openapi.json)
	$(UV) run python -m plumbing.openapi

.PHONY: bench
bench: setup ## Run the benchmark scenarios and write a dated results file in loadtests/results/
	$(UV) run python -m loadtests.bench

.PHONY: chaos
chaos: setup ## Chaos run: 2 replicas of everything, 50,000 contacts, kills, a database restart, a hung SMTP relay
	$(UV) run python -m loadtests.bench chaos
