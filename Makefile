# mqtt-rr-bench — `make help` lists the targets.
SHELL := /bin/bash
GO    ?= go
BIN   := bin

# `make run` defaults (each overridable: make run VIRTUAL_CLIENTS=50000 DURATION=10s).
RUN_VIRTUAL_CLIENTS := $(or $(VIRTUAL_CLIENTS),10000)
RUN_INTERVAL_MS     := $(or $(INTERVAL_MS),1000)
RUN_DURATION        := $(or $(DURATION),30s)

# The version every binary reports (--version, build_info): the VERSION file.
LDFLAGS := -ldflags "-X github.com/mqtt-rr-bench/mqtt-rr-bench/internal/metrics.Version=$(shell cat VERSION 2>/dev/null)"

# The binaries `make build` puts in bin/.
COMMANDS := loadgen-v2 worker-v2 cmd/rr-local cmd/rr-chart cmd/rr-echo cmd/rr-knee

.DEFAULT_GOAL := help

.PHONY: help build run test test-faults bench benchmark benchmark-quick lint fmt tidy clean dev-test

##@ Start here

run: build ## embedded broker + worker + loadgen here (10k clients, 1 s interval, 30 s), then the report, served 60 s more for the dashboards (METRICS_LINGER)
	VIRTUAL_CLIENTS=$(RUN_VIRTUAL_CLIENTS) INTERVAL_MS=$(RUN_INTERVAL_MS) DURATION=$(RUN_DURATION) $(BIN)/rr-local

test: ## go vet and the race-enabled tests, package by package with durations; skips say what they lack
	$(GO) vet ./...
	@mkdir -p $(BIN)
	@$(GO) build -o $(BIN)/rr-testsum ./cmd/rr-testsum
	@# A line per package as it ends, per slow test (progress inside e2e), per
	@# skip with its reason; failures in full; a summary. CI=true: a test whose
	@# tool is missing fails instead of skipping (brokertest.NeedTool).
	set -o pipefail; $(GO) test -race -count=1 -timeout 15m -json ./... | $(BIN)/rr-testsum

##@ Benchmarks (results in results/SUITE-TIMESTAMP/: reports, summary.csv, manifest.json, SVG charts)

benchmark-quick: build ## per broker (Mosquitto, embedded): 10k req/s for 10 s, the first 2 s a warm-up left out (8 s measured); < 1 min
	scripts/benchmark.sh quick

benchmark: build ## every suite: quick, knee (+ half the knee, ceiling), baseline, clients, mem1m, autoscale
	scripts/benchmark.sh all

bench: ## Go benchmarks of the hot paths (encode, decode, publish, response, pending, schedule, histogram)
	$(GO) test -run '^$$' -bench . -benchmem ./internal/... ./loadgen-v2/... ./worker-v2/...

##@ Build and develop

build: ## build loadgen-v2, worker-v2, rr-local, rr-chart, rr-echo and rr-knee into bin/
	@mkdir -p $(BIN)
	@for c in $(COMMANDS); do echo "$(GO) build -trimpath $(LDFLAGS) -o $(BIN)/$${c##*/} ./$$c"; $(GO) build -trimpath $(LDFLAGS) -o $(BIN)/$${c##*/} ./$$c || exit 1; done

dev-test: test ## the same as test

fmt: ## gofmt the tree
	gofmt -w $$(git ls-files '*.go')

lint: ## gofmt check, go vet, go mod tidy check
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...
	$(GO) mod tidy -diff

clean: ## remove bin/ (results/ is kept)
	rm -rf $(BIN)

help: ## list the targets
	@if [ -t 1 ]; then c=$$'\033[36m'; r=$$'\033[0m'; else c=; r=; fi; \
	echo "mqtt-rr-bench: make TARGET [VAR=value ...]"; \
	awk -v c="$$c" -v r="$$r" ' \
		/^##@ / { printf "\n%s\n", substr($$0, 5); next } \
		/^[a-zA-Z0-9_-]+:.*## / { split($$0, a, ":.*## "); n = a[1]; sub(/:.*/, "", n); printf "  %s%-18s%s %s\n", c, n, r, a[2] }' \
		$(MAKEFILE_LIST)

-include ops.mk
