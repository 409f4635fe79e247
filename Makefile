# watcher: `make demo` runs the main job on embedded defaults, `make test` runs the suite.
# Both install what they need first: Python packages into .venv (with the `demo` extra,
# moto's server, and the `dev` extra, the test and lint tools), Node packages into
# node_modules (Hardhat for the dev chain, solc-js and OpenZeppelin for the contract).

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PY_STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed

.PHONY: all deps demo test lint typecheck contracts bench bench-market clean

all: deps

$(PY_STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[demo,dev]'
	touch $@

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

deps: $(PY_STAMP) $(NODE_STAMP)

demo: deps
	$(BIN)/watcher demo

lint: $(PY_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(PY_STAMP)
	$(BIN)/mypy

test: deps lint typecheck
	$(BIN)/pytest

# Recompile contracts/CloudToken.sol into contracts/build/CloudToken.json (commit the result).
contracts: $(NODE_STAMP)
	node contracts/compile.js

clean:
	rm -rf $(VENV) node_modules .hardhat .pytest_cache .mypy_cache .ruff_cache

# Replays 20,000 payments from a local Hardhat node into SQLite and PostgreSQL, next to a
# bare eth_getLogs of the same range; then the time from a payment's block to its
# RunInstances call over 100 payments, with confirmations 0 and 2; one lease scheduler tick
# among 100,000 active leases and 1,000 expiries, against the same with no other leases
# (see bench/).
bench: deps
	$(BIN)/python bench/replay_bench.py --payments 20000 --postgres
	$(BIN)/python bench/latency_bench.py --payments 100 --block-time 1.0
	$(BIN)/python bench/lease_bench.py --leases 100000 --due 1000 --postgres

# AWESOME's experiments on the market's contracts: gas per function and the latency of a
# whole reverse sealed-bid auction and SLA round for 1, 10, 50 and 100 players, with
# automine and with 1 s blocks, beside AWESOME's published figures (see bench/).
bench-market: deps
	$(BIN)/python bench/market_bench.py --players 1,10,50,100 --block-time 1.0
