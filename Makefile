# Omniroute: two commands for users (make run, make test); the rest is for developers.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
CARGO ?= cargo
JOBS ?= 2
PG := scripts/pg.sh
# With DATABASE_URL set, that server is used; otherwise a project-local cluster under .omniroute/.
WITH_DEV_DB := $(if $(DATABASE_URL),,$(PG) with dev)
WITH_TEST_DB := $(if $(DATABASE_URL),,$(PG) with test)
# Where cargo puts binaries (CARGO_TARGET_DIR moves it).
TARGET_DIR := $(or $(CARGO_TARGET_DIR),target)

.PHONY: run test bench lint fmt build deps db-start db-stop db-url clean-db

## make run: build, start a local PostgreSQL (unless DATABASE_URL is set), migrate, seed the demo, serve.
run: deps
	$(CARGO) build --release -j$(JOBS) -p omniroute-web
	$(WITH_DEV_DB) bash -c '$(TARGET_DIR)/release/omniroute seed-demo && exec $(TARGET_DIR)/release/omniroute serve'

## make test: every test, against a PostgreSQL of its own (and a headless Chromium for the desk).
test:
	@scripts/deps.sh test
	$(WITH_TEST_DB) scripts/test.sh

## make bench: the benchmarks of docs/performance.md (release build, a durable local PostgreSQL).
WITH_BENCH_DB := $(if $(DATABASE_URL),,$(PG) with bench)
bench: deps
	$(CARGO) bench -j$(JOBS) -p omniroute-benches --bench routing_decision
	$(CARGO) build --release -j$(JOBS) -p omniroute-benches --bin engine_throughput
	$(WITH_BENCH_DB) $(TARGET_DIR)/release/engine_throughput
	$(CARGO) build --release -j$(JOBS) -p omniroute-benches --bin engine_memory
	$(WITH_BENCH_DB) $(TARGET_DIR)/release/engine_memory
	$(CARGO) build --release -j$(JOBS) -p omniroute-web -p omniroute-benches --bin omniroute --bin omniroute-load
	mkdir -p $(TARGET_DIR)/load
	$(WITH_BENCH_DB) $(TARGET_DIR)/release/omniroute-load --server-bin $(TARGET_DIR)/release/omniroute \
		--scenario smoke --json $(TARGET_DIR)/load/smoke.json
	$(WITH_BENCH_DB) $(TARGET_DIR)/release/omniroute-load --server-bin $(TARGET_DIR)/release/omniroute \
		--scenario steady --agents 200 --duration 30 --json $(TARGET_DIR)/load/steady.json
	$(WITH_BENCH_DB) $(TARGET_DIR)/release/omniroute-load --server-bin $(TARGET_DIR)/release/omniroute \
		--scenario churn --agents 200 --duration 30 --churn 0.5 --json $(TARGET_DIR)/load/churn.json
	$(WITH_BENCH_DB) $(TARGET_DIR)/release/omniroute-load --server-bin $(TARGET_DIR)/release/omniroute \
		--scenario ingest-ceiling --duration 5 --json $(TARGET_DIR)/load/ingest-ceiling.json
	$(WITH_BENCH_DB) $(TARGET_DIR)/release/omniroute-load --server-bin $(TARGET_DIR)/release/omniroute \
		--scenario backlog --backlog 2000 --agents 100 --json $(TARGET_DIR)/load/backlog.json
	$(WITH_BENCH_DB) $(TARGET_DIR)/release/omniroute-load --server-bin $(TARGET_DIR)/release/omniroute \
		--scenario idle --agents 1000 --parked 10000 --json $(TARGET_DIR)/load/idle.json
	$(WITH_BENCH_DB) $(TARGET_DIR)/release/omniroute-load --server-bin $(TARGET_DIR)/release/omniroute \
		--scenario restart --parked 20000 --json $(TARGET_DIR)/load/restart.json
	$(WITH_BENCH_DB) $(TARGET_DIR)/release/omniroute-load --server-bin $(TARGET_DIR)/release/omniroute --compare \
		--scenario steady --agents 50 --conversations 5 --messages 50 --duration 10 --handling 10 --think-ms 1000 \
		--quiet --json $(TARGET_DIR)/load/compare.json

## make lint: formatting and clippy, as CI checks them; the patched actix-http of vendor/ in use.
lint:
	python3 scripts/check-layers.py
	CARGO=$(CARGO) scripts/check-vendored.sh
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy -j$(JOBS) --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

build: deps
	$(CARGO) build -j$(JOBS) --workspace

# What building needs: libpq (diesel) and the PostgreSQL server binaries (local clusters).
deps:
	@scripts/deps.sh

db-start:
	$(PG) start dev
db-stop:
	$(PG) stop dev
db-url:
	@$(PG) url dev
clean-db:
	-$(PG) remove dev
	-$(PG) remove test
	rm -rf .omniroute
