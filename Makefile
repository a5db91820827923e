# The project's entry point. `make` (or `make help`) lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# The gateway's hot path, compiled with mypyc (gateway/compiled.py lists the modules).
COMPILED := $(VENV)/.compiled-stamp
HOT_SOURCES := $(shell $(PYTHON) -c "import sys; sys.path.insert(0, '.'); from gateway.compiled import MODULES, source, ROOT; print(' '.join(str(source(m).relative_to(ROOT)) for m in MODULES))" 2>/dev/null)
COMPOSE ?= $(shell docker compose version >/dev/null 2>&1 && echo "docker compose" || echo docker-compose)
SERVICE ?= catalog
N ?= 3
PYTEST_ARGS ?=

.PHONY: help install compile clean-compiled test unit contract integration e2e swarm lint format typecheck check run new-service up down logs ps scale bench chaos clean

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z0-9-]+:.*## / {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): requirements.txt requirements-dev.txt requirements-compile.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

install: $(STAMP) ## Create the virtualenv and install the pinned dependencies

$(COMPILED): $(STAMP) $(HOT_SOURCES) gateway/compiled.py
	$(BIN)/python scripts/compile.py
	touch $(COMPILED)

compile: $(COMPILED) ## Compile the gateway's hot path with mypyc (make clean-compiled: run it as plain Python)

clean-compiled: ## Remove the compiled hot path (the gateway then runs as plain Python)
	find . -path ./.venv -prune -o -name '*.so' -print -exec rm -f {} +
	rm -rf build $(COMPILED)

test: $(COMPILED) ## Run unit, contract and integration tests (everything but the Docker e2e and swarm suites)
	bash scripts/ensure-chromium.sh
	$(BIN)/pytest -m "not e2e and not swarm" $(PYTEST_ARGS)

unit: $(COMPILED) ## Run the unit tests only (no sockets)
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

contract: $(STAMP) ## Run the Consul contract tests (against the double, or --consul-addr)
	$(BIN)/pytest tests/contract $(PYTEST_ARGS)

integration: $(COMPILED) ## Run the integration tests (real gunicorn processes on loopback)
	bash scripts/ensure-chromium.sh
	$(BIN)/pytest tests/integration $(PYTEST_ARGS)

e2e: $(STAMP) ## Run the compose stack on a real Docker engine (needs root; see .ci/e2e)
	bash .ci/e2e

swarm: $(STAMP) ## Deploy deploy/swarm/stack.yml on a single-node swarm and test it (needs root; see .ci/swarm)
	bash .ci/swarm

lint: $(STAMP) ## ruff lint and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP) ## Apply ruff's formatting and safe fixes
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

typecheck: $(STAMP) ## mypy --strict on the packages
	$(BIN)/mypy

check: lint typecheck test ## Everything CI checks before the e2e suite

run: $(COMPILED) ## The stack on 127.0.0.1 without Docker; registry: CONSUL_HTTP_ADDR, else `consul agent -dev`, else the bundled one (ports: README "Quick start")
	bash scripts/run-local.sh

new-service: $(STAMP) ## Scaffold a service: make new-service NAME=orders (app, unit test, compose entry, README row)
	$(BIN)/python scripts/new_service.py "$(NAME)"

up: ## docker compose up --build, in the background
	$(COMPOSE) up --build -d

down: ## Stop the compose stack and remove its volumes
	$(COMPOSE) down -v --remove-orphans

logs: ## Follow the compose logs
	$(COMPOSE) logs -f

ps: ## List the compose containers
	$(COMPOSE) ps

scale: ## Scale a service: make scale SERVICE=catalog N=5
	$(COMPOSE) up -d --no-recreate --scale $(SERVICE)=$(N) $(SERVICE)

bench: $(COMPILED) ## Gateway vs nginx vs direct: req/s, CPU per request, slow and idle clients (BENCH_DURATION=10 BENCH_IDLE=5000 BENCH_SLOW_CLIENTS=1000)
	bash scripts/ensure-bench-tools.sh
	PYTHONPATH=. $(BIN)/python scripts/bench.py

chaos: $(COMPILED) ## Deploy-safety scenarios under load, with a scorecard (about 2 minutes)
	PYTHONPATH=. $(BIN)/python scripts/chaos.py

clean: ## Remove the virtualenv and caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
