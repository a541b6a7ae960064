# ops.mk: Docker Compose, dashboards, monitoring and Kubernetes targets.
# Included by the main Makefile (`include ops.mk`); its `help` lists the
# targets below from their `## ` comments. Every variable can be overridden
# on the command line: make up VIRTUAL_CLIENTS=50000 WORKER_INSTANCES=3
#
# Compose knobs not listed here (MODE, MAX_WORKERS, QOS, ...) are read from
# the environment by docker-compose.production.yml: make up MODE=sleep SLEEP_MS=5

OPS_ROOT := $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))

# Load shape for `make up`.
VIRTUAL_CLIENTS ?= 100000
WORKER_INSTANCES ?= 1
LOADGEN_INSTANCES ?= 1
INTERVAL_MS ?= 2000

# Where the JSON endpoints are reachable from this host. Unless given,
# stats/dashboard/dashboard-web use those `make run` publishes in
# RR_LOCAL_STATE while it runs (rr-local; its ports are 8090/8080 when free),
# else these.
LOADGEN_URL ?= http://localhost:8090
WORKER_URL ?= http://localhost:8080
RR_LOCAL_STATE ?= $(or $(XDG_RUNTIME_DIR),/tmp)/mqtt-rr-bench-local-$(shell id -u).env
# loadgen-v2-N (N >= 1) started by `make up` listens on LOADGEN_PORT_BASE+N.
LOADGEN_PORT_BASE ?= 8090
DASHBOARD_WEB_PORT ?= 8000

DOCKER ?= docker
DOCKER_COMPOSE ?= $(DOCKER) compose
COMPOSE_PROJECT ?= mqtt-rr-bench
PRODUCTION_COMPOSE_FILE ?= $(OPS_ROOT)/docker-compose.production.yml
K8S_DEPLOY ?= $(OPS_ROOT)/k8s/deploy.sh
# make k8s-logs K8S_LOGS_ARGS="worker -f"
K8S_LOGS_ARGS ?= all

# The image tag of worker-v2 and loadgen-v2 (Compose and Kubernetes): VERSION.
IMAGE_TAG ?= $(shell cat $(OPS_ROOT)/VERSION 2>/dev/null)

OPS_COMPOSE = $(DOCKER_COMPOSE) -p $(COMPOSE_PROJECT) -f $(PRODUCTION_COMPOSE_FILE)
OPS_COMPOSE_ENV = VIRTUAL_CLIENTS=$(VIRTUAL_CLIENTS) INTERVAL_MS=$(INTERVAL_MS) IMAGE_TAG=$(IMAGE_TAG)

# OPS_ENDPOINTS: a recipe line that sets $$LOADGEN_URL and $$WORKER_URL in the
# shell: the ones given on the command line or in the environment, else make
# run's (scripts/dashboard.sh --endpoints reads RR_LOCAL_STATE), else the
# defaults above; and $$SOURCE, where they come from.
OPS_GIVEN_URLS = $(if $(filter-out file default undefined,$(origin LOADGEN_URL)),LOADGEN_URL='$(LOADGEN_URL)') \
	$(if $(filter-out file default undefined,$(origin WORKER_URL)),WORKER_URL='$(WORKER_URL)')
OPS_ENDPOINTS = eval "$$(env -u LOADGEN_URL -u WORKER_URL $(OPS_GIVEN_URLS) RR_LOCAL_STATE='$(RR_LOCAL_STATE)' \
	$(OPS_ROOT)/scripts/dashboard.sh --endpoints)"; \
	LOADGEN_URL=$${LOADGEN_URL:-$(LOADGEN_URL)}; WORKER_URL=$${WORKER_URL:-$(WORKER_URL)}

# OPS_NEED_COMPOSE: a recipe line that stops naming everything that is
# missing at once (Docker, the Compose v2 plugin, a running daemon), how to
# get each, and how to run the benchmark without Docker.
OPS_NEED_COMPOSE = \
	missing=""; \
	compose="\n  - the Docker Compose v2 plugin is missing ('$(DOCKER_COMPOSE) version' failed):\n    package docker-compose-plugin (https://docs.docker.com/compose/install/linux/),\n    or a standalone v2 binary: make $@ DOCKER_COMPOSE=docker-compose"; \
	if ! command -v $(firstword $(DOCKER)) >/dev/null 2>&1; then \
		missing="\n  - Docker is not installed ('$(firstword $(DOCKER))' not found): Docker Engine,\n    https://docs.docker.com/engine/install/"; \
		if [ "$(firstword $(DOCKER_COMPOSE))" = "$(firstword $(DOCKER))" ] || ! $(DOCKER_COMPOSE) version >/dev/null 2>&1; then \
			missing="$$missing$$compose"; fi; \
	else \
		if ! $(DOCKER_COMPOSE) version >/dev/null 2>&1; then missing="$$compose"; fi; \
		if ! $(DOCKER) info >/dev/null 2>&1; then \
			missing="$$missing\n  - No Docker daemon answers ('$(DOCKER) info' failed): sudo systemctl start docker,\n    or your access to it (the docker group, DOCKER_HOST)"; fi; \
	fi; \
	if [ -n "$$missing" ]; then \
		printf 'make $@ needs Docker with the Compose v2 plugin. Missing here:%b\n%s\n%s\n' "$$missing" \
			"Without Docker, on this machine with nothing but Go: make run (embedded broker + worker +" \
			"loadgen, then the report) or make benchmark-quick (one short run per broker)." >&2; \
		exit 1; fi

# OPS_SEED_CHECK refuses CONNECTIONS, which the loadgen (100) and the worker
# (10) read with different meanings; OPS_SEED_NAMES maps the binaries' own
# names onto the Compose variables (BROKER -> LOADGEN_BROKER, MQTT_BROKER ->
# WORKER_BROKER). Every other variable of the binaries goes through under its
# own name (docker-compose.production.yml; e2e/readme_test.go keeps it so).
OPS_SEED_CHECK = \
	if [ -n "$${CONNECTIONS:-}" ]; then \
		echo "CONNECTIONS=$${CONNECTIONS} is ambiguous for Compose: the loadgen's connections (default 100) and the worker's (default 10) differ. Set LOADGEN_CONNECTIONS=... and/or WORKER_CONNECTIONS=... instead." >&2; exit 2; fi
OPS_SEED_NAMES = \
	if [ -n "$${BROKER:-}" ]; then export LOADGEN_BROKER=$${LOADGEN_BROKER:-$$BROKER}; fi; \
	if [ -n "$${MQTT_BROKER:-}" ]; then export WORKER_BROKER=$${WORKER_BROKER:-$$MQTT_BROKER}; fi; \
	if [ -n "$${LOADGEN_BROKER:-}" ] && [ -z "$${WORKER_BROKER:-}" ]; then \
		echo "note: the loadgen uses $$LOADGEN_BROKER, the worker still the bundled EMQX (set MQTT_BROKER or WORKER_BROKER too)" >&2; fi; \
	if [ -n "$${WORKER_BROKER:-}" ] && [ -z "$${LOADGEN_BROKER:-}" ]; then \
		echo "note: the worker uses $$WORKER_BROKER, the loadgen still the bundled EMQX (set BROKER or LOADGEN_BROKER too)" >&2; fi

.PHONY: up up-fleet up-100k down stats dashboard dashboard-web monitoring-up monitoring-down \
	k8s-build k8s-deploy-kind k8s-deploy-1m k8s-fleet-run k8s-status k8s-logs k8s-dashboard k8s-cleanup check-ops

##@ Docker Compose (EMQX + worker-v2 + loadgen-v2 on this host; needs Docker with the Compose v2 plugin)

up: ## Start EMQX + worker-v2 + loadgen-v2 in Docker (VIRTUAL_CLIENTS, WORKER_INSTANCES, LOADGEN_INSTANCES, INTERVAL_MS, any variable of the binaries)
	@case "$(WORKER_INSTANCES)$(LOADGEN_INSTANCES)" in *[!0-9]*|'') \
		echo "WORKER_INSTANCES=$(WORKER_INSTANCES) and LOADGEN_INSTANCES=$(LOADGEN_INSTANCES) must be whole numbers" >&2; exit 2;; esac
	@if [ "$(LOADGEN_INSTANCES)" -lt 1 ]; then echo "LOADGEN_INSTANCES=$(LOADGEN_INSTANCES) must be at least 1" >&2; exit 2; fi
	@# Compose gives a service's replicas no index: with plain subscriptions each
	@# would answer every request (or, with WORKER_COUNT, the same shards).
	@if [ "$(SHARED_SUBSCRIPTION)" = false ] && [ "$(WORKER_INSTANCES)" -gt 1 ]; then \
		echo "SHARED_SUBSCRIPTION=false with WORKER_INSTANCES=$(WORKER_INSTANCES): every replica would subscribe to the same requests and answer each (Compose gives replicas no WORKER_INDEX); run WORKER_INSTANCES=1, or split the shards on Kubernetes (k8s/overlays/shard-split: WORKER_INDEX=auto, WORKER_COUNT)" >&2; exit 2; fi
	@# Each worker replica publishes its HTTP port from the WORKER_HOST_PORTS range.
	@ports=$${WORKER_HOST_PORTS:-8080-8089}; lo=$${ports%-*}; hi=$${ports#*-}; \
	case "$$lo$$hi" in *[!0-9]*|'') echo "WORKER_HOST_PORTS=$$ports: want a port range FIRST-LAST, e.g. 18080-18099" >&2; exit 2;; esac; \
	n=$$((hi - lo + 1)); \
	if [ "$(WORKER_INSTANCES)" -gt "$$n" ]; then \
		echo "WORKER_INSTANCES=$(WORKER_INSTANCES) needs $(WORKER_INSTANCES) host ports but WORKER_HOST_PORTS=$$ports has $$n (and 8090 up are the loadgens'): set a free range, e.g. make up WORKER_INSTANCES=$(WORKER_INSTANCES) WORKER_HOST_PORTS=18080-$$((18080 + $(WORKER_INSTANCES) - 1))" >&2; exit 2; fi
	@$(OPS_SEED_CHECK)
	@$(OPS_NEED_COMPOSE)
	@$(OPS_SEED_NAMES); \
	echo "$(OPS_COMPOSE_ENV) $(OPS_COMPOSE) up -d --build --scale worker-v2=$(WORKER_INSTANCES) emqx worker-v2 loadgen-v2"; \
	$(OPS_COMPOSE_ENV) $(OPS_COMPOSE) up -d --build --scale worker-v2=$(WORKER_INSTANCES) emqx worker-v2 loadgen-v2
	@# Extra loadgen instances: one-off containers of the loadgen-v2 service,
	@# each with its own INSTANCE_ID, so CLIENT_ID_OFFSET=auto gives it the
	@# client ids [N*VIRTUAL_CLIENTS, (N+1)*VIRTUAL_CLIENTS).
	@old=$$($(DOCKER) ps -aq --filter label=com.docker.compose.project=$(COMPOSE_PROJECT) \
		--filter label=com.docker.compose.service=loadgen-v2 --filter label=com.docker.compose.oneoff=True); \
	if [ -n "$$old" ]; then $(DOCKER) rm -f $$old >/dev/null; fi; \
	$(OPS_SEED_NAMES) 2>/dev/null; \
	i=1; while [ $$i -lt $(LOADGEN_INSTANCES) ]; do \
		port=$$(($(LOADGEN_PORT_BASE) + i)); \
		report=$${REPORT_FILE:+$${REPORT_FILE%.json}-$$i.json}; \
		echo "loadgen-v2-$$i: client ids from $$((i * $(VIRTUAL_CLIENTS))), http://localhost:$$port"; \
		$(OPS_COMPOSE_ENV) $(OPS_COMPOSE) run -d --no-deps --use-aliases \
			--name $(COMPOSE_PROJECT)-loadgen-v2-extra-$$i \
			-e INSTANCE_ID=loadgen-v2-$$i -e REPORT_FILE=$$report \
			-p 127.0.0.1:$$port:8090 loadgen-v2 >/dev/null || exit 1; \
		i=$$((i + 1)); \
	done
	@echo "Running: $(LOADGEN_INSTANCES) x $(VIRTUAL_CLIENTS) virtual clients every $(INTERVAL_MS) ms, $(WORKER_INSTANCES) worker(s)."
	@echo "Watch it: make dashboard | make stats | make monitoring-up"

up-fleet: ## One fleet run in Docker: EMQX, worker-v2, LOADGEN_INSTANCES loadgens as one fleet for FLEET_DURATION (60s); merged report into results/, exits with the fleet's verdict
	@$(OPS_NEED_COMPOSE)
	@COMPOSE="$(OPS_COMPOSE)" DOCKER=$(DOCKER) COMPOSE_PROJECT=$(COMPOSE_PROJECT) LOADGEN_INSTANCES=$(LOADGEN_INSTANCES) \
		WORKER_INSTANCES=$(WORKER_INSTANCES) FLEET_DURATION=$${FLEET_DURATION:-60s} $(OPS_COMPOSE_ENV) scripts/compose-fleet.sh

up-100k: VIRTUAL_CLIENTS = 100000
up-100k: LOADGEN_INSTANCES = 1
up-100k: WORKER_INSTANCES = 2
up-100k: INTERVAL_MS = 2000
up-100k: up ## Start the 100k-virtual-client setup (1 loadgen, 2 workers, 2 s interval: 50k req/s)

down: ## Stop and remove the Compose deployment, extra loadgens and monitoring (volumes are kept)
	@$(OPS_NEED_COMPOSE)
	$(OPS_COMPOSE) --profile monitoring down --remove-orphans

##@ Dashboards and monitoring

stats: ## Print loadgen /debug/vars ("loadgen" key) and worker /stats (make run's or make up's, LOADGEN_URL, WORKER_URL)
	@$(OPS_ENDPOINTS); echo "endpoints: $$SOURCE"; rc=0; \
	for ep in "loadgen $$LOADGEN_URL/debug/vars" "worker $$WORKER_URL/stats"; do \
		set -- $$ep; echo "== $$1  $$2"; \
		if body=$$(curl -fsS --max-time 3 "$$2" 2>&1); then \
			if command -v jq >/dev/null 2>&1; then \
				printf '%s' "$$body" | jq 'if has("loadgen") then .loadgen else . end'; \
			else \
				printf '%s' "$$body" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(json.dumps(d.get("loadgen", d), indent=2))'; \
			fi; \
		else echo "not reachable: $$body"; rc=1; fi; \
	done; exit $$rc

dashboard: ## Live terminal dashboard of make run or make up (LOADGEN_URL, WORKER_URL); Ctrl-C quits
	@env -u LOADGEN_URL -u WORKER_URL $(OPS_GIVEN_URLS) RR_LOCAL_STATE='$(RR_LOCAL_STATE)' $(OPS_ROOT)/scripts/dashboard.sh

dashboard-web: ## Serve monitoring/ on 127.0.0.1:8000 (DASHBOARD_WEB_PORT) for the web dashboard of make run or make up; Ctrl-C stops
	@$(OPS_ENDPOINTS); \
	echo "Web dashboard: http://localhost:$(DASHBOARD_WEB_PORT)/dashboard.html?loadgen=$$LOADGEN_URL&worker=$$WORKER_URL"; \
	echo "  (endpoints: $$SOURCE; others: ...dashboard.html?loadgen=URL&worker=URL)"; \
	cd $(OPS_ROOT)/monitoring && exec python3 -m http.server $(DASHBOARD_WEB_PORT) --bind 127.0.0.1

monitoring-up: ## Start Prometheus (:9090) and Grafana (:3000, admin/admin) for the Compose deployment
	@$(OPS_NEED_COMPOSE)
	$(OPS_COMPOSE) --profile monitoring up -d prometheus grafana
	@echo "Prometheus: http://localhost:9090"
	@echo "Grafana:    http://localhost:3000 (admin / $${GRAFANA_ADMIN_PASSWORD:-admin})"

monitoring-down: ## Stop and remove Prometheus and Grafana (their data volumes are kept)
	@$(OPS_NEED_COMPOSE)
	$(OPS_COMPOSE) --profile monitoring rm --stop --force prometheus grafana

##@ Kubernetes (k8s/: needs kubectl and a cluster; kind for k8s-deploy-kind)

k8s-build: ## Build the images (tag: VERSION) and load them into kind (push with IMAGE_REGISTRY=...)
	IMAGE_TAG=$(IMAGE_TAG) $(K8S_DEPLOY) build

k8s-deploy-kind: ## Deploy k8s/overlays/kind to kind: 3 small EMQX nodes, 10k virtual clients
	IMAGE_TAG=$(IMAGE_TAG) $(K8S_DEPLOY) kind

k8s-deploy-1m: ## Deploy k8s/overlays/1m to the current kubectl context: 3 EMQX nodes, 10 loadgen pods x 100k clients
	IMAGE_TAG=$(IMAGE_TAG) $(K8S_DEPLOY) 1m

k8s-fleet-run: ## One fleet run on the current context (k8s/overlays/fleet: FLEET_SIZE loadgen pods as an Indexed Job): merged report into results/, exits with the fleet's verdict
	IMAGE_TAG=$(IMAGE_TAG) $(K8S_DEPLOY) fleet

k8s-status: ## Kubernetes pods, HPA, EMQX cluster status and per-loadgen numbers
	$(K8S_DEPLOY) status

k8s-logs: ## Kubernetes logs (K8S_LOGS_ARGS="worker -f" to pick and follow)
	$(K8S_DEPLOY) logs $(K8S_LOGS_ARGS)

k8s-dashboard: ## EMQX dashboard of the cluster on http://127.0.0.1:18083 (port-forward; prints the admin password); Ctrl-C stops
	$(K8S_DEPLOY) dashboard

k8s-cleanup: ## Delete the Kubernetes namespace (KIND_DELETE_CLUSTER=1 also deletes the kind cluster)
	$(K8S_DEPLOY) cleanup

##@ Checks

check-ops: ## Validate compose, k8s, Prometheus, Grafana and scripts (skips checks whose tool is missing)
	$(OPS_ROOT)/scripts/check-ops.sh
