# mqtt-rr-bench — `make help` lists the targets.
SHELL := /bin/bash
GO    ?= go
BIN   := bin

# `make run` defaults (each overridable: make run VIRTUAL_CLIENTS=50000 DURATION=10s).
RUN_VIRTUAL_CLIENTS := $(or $(VIRTUAL_CLIENTS),10000)
RUN_INTERVAL_MS     := $(or $(INTERVAL_MS),1000)
RUN_DURATION        := $(or $(DURATION),30s)

.DEFAULT_GOAL := help

.PHONY: help build run test test-faults bench benchmark benchmark-quick lint fmt tidy clean dev-test

help: ## list the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | sort | awk 'BEGIN {FS = ":.*## "}; {printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2}'

build: ## build loadgen-v2, worker-v2 and rr-local into bin/
	@mkdir -p $(BIN)
	$(GO) build -trimpath -o $(BIN)/loadgen-v2 ./loadgen-v2
	$(GO) build -trimpath -o $(BIN)/worker-v2 ./worker-v2
	$(GO) build -trimpath -o $(BIN)/rr-local ./cmd/rr-local

run: build ## embedded broker + worker + loadgen on this machine (10k clients, 1 s interval, 30 s), then the report
	VIRTUAL_CLIENTS=$(RUN_VIRTUAL_CLIENTS) INTERVAL_MS=$(RUN_INTERVAL_MS) DURATION=$(RUN_DURATION) $(BIN)/rr-local

test: ## go vet and the race-enabled test suite (uses mosquitto when installed)
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 15m ./...

dev-test: test ## alias of test (seed name)

bench: ## Go benchmarks of the hot paths (encode, decode, pending, schedule, histogram)
	$(GO) test -run '^$$' -bench . -benchmem ./internal/... ./loadgen-v2/... ./worker-v2/...

benchmark: build ## benchmark suite against mosquitto and the embedded broker (scripts/benchmark.sh)
	scripts/benchmark.sh all

benchmark-quick: build ## quick benchmark: one short run per broker
	scripts/benchmark.sh quick

fmt: ## gofmt the tree
	gofmt -w $$(git ls-files '*.go')

lint: ## gofmt check, go vet, go mod tidy check
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...
	$(GO) mod tidy -diff

clean: ## remove bin/
	rm -rf $(BIN)

-include ops.mk
