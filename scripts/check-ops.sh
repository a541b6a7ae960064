#!/usr/bin/env bash
# Static and offline checks of the deployment files: Compose, Kubernetes,
# Prometheus rules, Grafana dashboard, web and terminal dashboards, scripts.
# Needs no Docker engine, cluster or network (kubecheck's Go modules come
# from the Go module proxy on first use).
#
# Usage: scripts/check-ops.sh
#
# Every check whose tool is missing is skipped with the reason. Tools:
# ShellCheck, python3 (+ PyYAML), jq, promtool, docker compose (v2),
# kubectl (kustomize) or kustomize, go, node, chromium, make.
# Install on Debian: apt-get install -y shellcheck prometheus jq chromium
#
# Output: PASS/FAIL/SKIP per check, then "check-ops: N passed, N failed,
# N skipped". Exit status 1 if any check failed.
set -euo pipefail

ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

TMP=$(mktemp -d)
SERVER_PID=
cleanup() {
	if [[ -n $SERVER_PID ]]; then kill "$SERVER_PID" 2>/dev/null || true; fi
	rm -rf "$TMP"
}
trap cleanup EXIT

PASSED=0 FAILED=0 SKIPPED=0

have() { command -v "$1" >/dev/null 2>&1; }
indent() { sed 's/^/    /'; }

# check NAME CMD...: run CMD, PASS if it exits 0, FAIL otherwise; its output
# is shown indented either way. Always returns 0 (set -e); the command's
# status is left in LAST_RC.
LAST_RC=0
check() {
	local name=$1 out rc=0
	shift
	out=$("$@" 2>&1) || rc=$?
	LAST_RC=$rc
	if ((rc == 0)); then
		PASSED=$((PASSED + 1))
		printf 'PASS  %s\n' "$name"
	else
		FAILED=$((FAILED + 1))
		printf 'FAIL  %s (exit %d)\n' "$name" "$rc"
	fi
	if [[ -n $out ]]; then printf '%s\n' "$out" | indent; fi
}

skip() {
	SKIPPED=$((SKIPPED + 1))
	printf 'SKIP  %s: %s\n' "$1" "$2"
}

readonly SCRIPTS=(k8s/deploy.sh scripts/dashboard.sh scripts/check-ops.sh scripts/benchmark.sh scripts/k8s-apiserver-check.sh scripts/compose-fleet.sh)
readonly COMPOSE_FILE=docker-compose.production.yml
readonly DASHBOARD_JSON=monitoring/grafana/dashboards/mqtt-rr-bench.json

# The metric names of the contract (namespace mqttrr; the last line are
# gauges the binaries export beyond it). Rules and the dashboard may use
# nothing else, so a rename on the Go side shows up here.
readonly CONTRACT_METRICS="
mqttrr_loadgen_requests_sent_total mqttrr_loadgen_responses_matched_total
mqttrr_loadgen_requests_timed_out_total mqttrr_loadgen_requests_skipped_total
mqttrr_loadgen_requests_send_failed_total mqttrr_loadgen_responses_unmatched_total
mqttrr_loadgen_pending_requests mqttrr_loadgen_virtual_clients mqttrr_loadgen_connections_up
mqttrr_loadgen_latency_seconds mqttrr_loadgen_schedule_lag_seconds
mqttrr_worker_messages_received_total mqttrr_worker_messages_total mqttrr_worker_queue_depth
mqttrr_worker_queue_capacity mqttrr_worker_workers mqttrr_worker_scaling_events_total
mqttrr_worker_queue_wait_seconds mqttrr_worker_processing_seconds mqttrr_worker_connections_up
mqttrr_loadgen_target_rate_rps mqttrr_worker_in_flight mqttrr_worker_connections
mqttrr_loadgen_info mqttrr_loadgen_build_info mqttrr_loadgen_phase mqttrr_loadgen_connections
mqttrr_loadgen_connects_total mqttrr_loadgen_connection_losses_total mqttrr_loadgen_reconnects_total
mqttrr_loadgen_request_bytes_total mqttrr_loadgen_response_bytes_total
mqttrr_worker_max_workers mqttrr_worker_demand_workers mqttrr_worker_queue_oldest_seconds
mqttrr_worker_min_workers mqttrr_worker_phase mqttrr_worker_build_info
mqttrr_worker_connects_total mqttrr_worker_connection_losses_total mqttrr_worker_reconnects_total
"

# --- shell scripts --------------------------------------------------------------

if have shellcheck; then
	check "shellcheck ${SCRIPTS[*]}" shellcheck -x "${SCRIPTS[@]}"
else
	skip shellcheck "shellcheck not installed (apt-get install shellcheck)"
fi

syntax_check() {
	local f
	for f; do bash -n "$f" || return; done
}
check "bash -n ${SCRIPTS[*]}" syntax_check "${SCRIPTS[@]}"

# --- YAML and JSON syntax -------------------------------------------------------

mapfile -t YAML_FILES < <(find k8s monitoring -name '*.yml' -o -name '*.yaml' | sort; echo "$COMPOSE_FILE")
if have python3 && python3 -c 'import yaml' 2>/dev/null; then
	check "YAML parses (${#YAML_FILES[@]} files)" python3 -c '
import sys, yaml
for f in sys.argv[1:]:
    with open(f) as fh:
        docs = [d for d in yaml.safe_load_all(fh) if d is not None]
    print("%-58s %d document(s)" % (f, len(docs)))
' "${YAML_FILES[@]}"
else
	skip "YAML parse" "python3 with PyYAML not available"
fi

dashboard_json_check() {
	python3 - "$DASHBOARD_JSON" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
problems = []
ids = [p["id"] for p in d["panels"]]
if len(ids) != len(set(ids)):
    problems.append("panel ids are not unique")
if not d.get("uid") or not d.get("title"):
    problems.append("dashboard uid/title missing")
for p in d["panels"]:
    g = p.get("gridPos", {})
    if g.get("x", 0) + g.get("w", 0) > 24:
        problems.append("panel %r is wider than the grid" % p.get("title"))
    if p["type"] == "row":
        continue
    if p.get("datasource", {}).get("uid") != "${datasource}":
        problems.append("panel %r does not use the ${datasource} variable" % p.get("title"))
    if not p.get("targets") or not all(t.get("expr") for t in p["targets"]):
        problems.append("panel %r has a target without expr" % p.get("title"))
print("%d panels, %d queries" % (len(d["panels"]), sum(len(p.get("targets", [])) for p in d["panels"])))
if problems:
    sys.exit("\n".join(problems))
PY
}
if have python3; then
	check "Grafana dashboard JSON structure" dashboard_json_check
elif have jq; then
	check "Grafana dashboard JSON parses" jq -e '.panels | length > 0' "$DASHBOARD_JSON"
else
	skip "Grafana dashboard JSON" "neither python3 nor jq available"
fi

# --- Prometheus -----------------------------------------------------------------

# Queries of the dashboard as a rules file, so promtool parses every one.
dashboard_queries_as_rules() {
	python3 - "$DASHBOARD_JSON" >"$TMP/dashboard-rules.yml" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
print("groups:\n  - name: dashboard-queries\n    rules:")
n = 0
for p in d["panels"]:
    for t in p.get("targets", []):
        n += 1
        expr = t["expr"].replace("$__rate_interval", "1m").replace("$__interval", "1m").replace("$__range", "1h")
        print("      - record: dashboard:query_%d\n        expr: %s" % (n, json.dumps(expr)))
PY
}

# Every mqttrr_* name in rules and dashboard must come from the contract.
metric_names_check() {
	python3 - "$CONTRACT_METRICS" monitoring/alerts.yml monitoring/alerts_test.yml "$DASHBOARD_JSON" <<'PY'
import re, sys
contract = set(sys.argv[1].split())
allowed = set(contract)
for m in contract:
    if m.endswith("_seconds"):  # histograms
        allowed |= {m + "_bucket", m + "_sum", m + "_count"}
bad = {}
for f in sys.argv[2:]:
    for name in re.findall(r"(?<![\w:])mqttrr_[a-z0-9_]+", open(f).read()):
        if name not in allowed:
            bad.setdefault(name, set()).add(f)
for name, files in sorted(bad.items()):
    print("%s (in %s) is not a contract metric" % (name, ", ".join(sorted(files))))
sys.exit(1 if bad else 0)
PY
}

if have promtool; then
	check "promtool check config monitoring/prometheus.yml" promtool check config monitoring/prometheus.yml
	k8s_conf_out=$(promtool check config monitoring/prometheus-k8s.yml 2>&1) && k8s_conf_rc=0 || k8s_conf_rc=$?
	if ((k8s_conf_rc != 0)) && grep -q 'field kubernetes_sd_configs not found' <<<"$k8s_conf_out"; then
		skip "promtool check config monitoring/prometheus-k8s.yml" \
			"this promtool is built without Kubernetes service discovery (Debian's is)"
	else
		check "promtool check config monitoring/prometheus-k8s.yml" promtool check config monitoring/prometheus-k8s.yml
	fi
	check "promtool check rules monitoring/alerts.yml" promtool check rules monitoring/alerts.yml
	check "promtool test rules monitoring/alerts_test.yml" promtool test rules monitoring/alerts_test.yml
	if have python3; then
		dashboard_queries_as_rules
		check "promtool parses every dashboard query" promtool check rules "$TMP/dashboard-rules.yml"
	else
		skip "dashboard queries" "python3 not available"
	fi
else
	skip promtool "promtool not installed (apt-get install prometheus)"
fi
if have python3; then
	check "rules and dashboard use only contract metric names" metric_names_check
else
	skip "metric names" "python3 not available"
fi

# --- Docker Compose -----------------------------------------------------------

compose_config() {
	docker compose -f "$COMPOSE_FILE" config -q &&
		docker compose -f "$COMPOSE_FILE" --profile monitoring config -q &&
		docker compose -f "$COMPOSE_FILE" --profile monitoring config --services
}
if have docker && docker compose version >/dev/null 2>&1; then
	check "docker compose config ($COMPOSE_FILE, default and monitoring profiles)" compose_config
else
	skip "docker compose config" "the Docker Compose v2 plugin is not installed"
fi

compose_policy() {
	python3 - "$COMPOSE_FILE" <<'PY'
import sys, yaml
c = yaml.safe_load(open(sys.argv[1]))
bad = []
for name in ("worker-v2", "loadgen-v2"):
    s = c["services"][name]
    if s.get("read_only") is not True:
        bad.append(name + ": read_only is not true")
    if "ALL" not in (s.get("cap_drop") or []):
        bad.append(name + ": cap_drop does not contain ALL")
for name, s in c["services"].items():
    for p in s.get("ports", []):
        if isinstance(p, str) and not p.startswith("127.0.0.1:"):
            bad.append("%s: port %s is not bound to 127.0.0.1" % (name, p))
print("\n".join(bad) or "worker-v2, loadgen-v2 read_only with cap_drop ALL; all ports on 127.0.0.1")
sys.exit(1 if bad else 0)
PY
}
if have python3 && python3 -c 'import yaml' 2>/dev/null; then
	check "compose hardening (read_only, cap_drop ALL, loopback ports)" compose_policy
else
	skip "compose hardening" "python3 with PyYAML not available"
fi

# Without a Docker engine: the Compose file loaded by compose-go, the loader
# of Docker Compose itself (interpolation, profiles, its JSON schema), and
# what make up-fleet relies on (scripts/composecheck; a module of its own).
compose_go_check() {
	(
		cd scripts/composecheck || exit
		export GOWORK=off GOFLAGS=-mod=readonly
		go vet ./... && go test ./... >/dev/null && go run . "$ROOT/$COMPOSE_FILE"
	)
}
if have go; then
	check "compose-go loads $COMPOSE_FILE (default, monitoring; the loadgen passes FLEET_*, writable /reports)" compose_go_check
else
	skip "compose-go load" "go not installed"
fi

if have docker && docker info >/dev/null 2>&1; then
	for df in loadgen-v2/Dockerfile worker-v2/Dockerfile; do
		check "docker build --check $df" docker build --check -f "$df" .
	done
else
	skip "Dockerfile lint (docker build --check)" "no Docker engine"
fi

# --- Kubernetes -----------------------------------------------------------------

K8S_RENDERED=()
kustomize_build() { # DIR OUT
	if have kubectl; then
		kubectl kustomize --load-restrictor LoadRestrictionsNone "$1" >"$2"
	else
		kustomize build --load-restrictor LoadRestrictionsNone "$1" >"$2"
	fi
	printf '%s: %s objects\n' "$1" "$(grep -c '^kind:' "$2")"
}
if have kubectl || have kustomize; then
	check "kustomize build k8s/" kustomize_build k8s "$TMP/k8s-base.yaml"
	if ((LAST_RC == 0)); then K8S_RENDERED+=("$TMP/k8s-base.yaml"); fi
	check "kustomize build k8s/overlays/kind" kustomize_build k8s/overlays/kind "$TMP/k8s-kind.yaml"
	if ((LAST_RC == 0)); then K8S_RENDERED+=("$TMP/k8s-kind.yaml"); fi
	check "kustomize build k8s/overlays/1m" kustomize_build k8s/overlays/1m "$TMP/k8s-1m.yaml"
	if ((LAST_RC == 0)); then
		K8S_RENDERED+=("$TMP/k8s-1m.yaml")
		check "k8s/overlays/1m renders the base (k8s/) unchanged" diff "$TMP/k8s-base.yaml" "$TMP/k8s-1m.yaml"
	fi
else
	skip "kustomize build" "neither kubectl nor kustomize installed; kubecheck uses the raw base files"
	cat k8s/namespace.yaml <(echo ---) k8s/emqx-cluster.yaml <(echo ---) k8s/worker.yaml <(echo ---) \
		k8s/loadgen.yaml >"$TMP/k8s-raw.yaml"
	K8S_RENDERED+=("$TMP/k8s-raw.yaml")
fi

if have go; then
	check "go test k8s/kubecheck" env GOWORK=off GOFLAGS=-mod=readonly bash -c 'cd k8s/kubecheck && go vet ./... && go test ./...'
	if ((${#K8S_RENDERED[@]} > 0)); then
		(cd k8s/kubecheck && GOWORK=off GOFLAGS=-mod=readonly go build -o "$TMP/kubecheck" .) >/dev/null 2>&1 || true
		if [[ -x $TMP/kubecheck ]]; then
			check "kubecheck: strict API schema + pod security/resources policy" "$TMP/kubecheck" "${K8S_RENDERED[@]}"
		else
			check "kubecheck build" env GOWORK=off bash -c 'cd k8s/kubecheck && go build -o /dev/null .'
		fi
	fi
else
	skip kubecheck "go not installed"
fi

# A real control plane (kube-apiserver, scheduler, controller manager from the
# Go module proxy, cached; Debian's etcd): server-side dry run of every
# overlay, the 1m deployment scheduled, the fleet Job's indexes.
# CHECK_OPS_KUBE=0 skips it.
if [[ ${CHECK_OPS_KUBE:-1} == 0 ]]; then
	skip "real kube-apiserver" "CHECK_OPS_KUBE=0"
elif have etcd && have go && have kubectl && have openssl; then
	check "real kube-apiserver: dry run of every overlay, 1m scheduled, fleet Job indexes (scripts/k8s-apiserver-check.sh)" scripts/k8s-apiserver-check.sh
else
	skip "real kube-apiserver" "needs etcd (apt-get install etcd-server), go, kubectl (kubernetes-client) and openssl"
fi

# --- image tags -------------------------------------------------------------------

# The project's images are pinned to VERSION everywhere (no :latest), and the
# third-party images to a version.
image_tags_check() {
	local version compose_default bad=0 line
	version=$(cat VERSION)
	compose_default="\${IMAGE_TAG:-$version}}"
	while IFS= read -r line; do
		case $line in
		*mqtt-rr-bench/*:"$version" | *mqtt-rr-bench/*:"$compose_default") ;;
		*) printf 'not pinned to VERSION %s: %s\n' "$version" "$line"; bad=1 ;;
		esac
	done < <(grep -rhoE 'mqtt-rr-bench/(loadgen|worker)-v2:[^ "]+' k8s/*.yaml k8s/overlays "$COMPOSE_FILE")
	if grep -rnE 'image: *[^ ]+:latest|image: *[a-z0-9./-]+ *$' k8s "$COMPOSE_FILE" --include='*.y*ml'; then
		echo "images above are :latest or untagged"
		bad=1
	fi
	((bad == 0)) && echo "mqtt-rr-bench images at $version; every image has a version"
}
check "image tags (VERSION, no :latest)" image_tags_check

# --- ops.mk ----------------------------------------------------------------------

ops_mk_check() {
	local reserved
	reserved=$(grep -En '^(build|run|test|help|bench|benchmark[a-zA-Z0-9_-]*|clean)[[:space:]]*:' ops.mk || true)
	if [[ -n $reserved ]]; then
		printf 'ops.mk defines targets the main Makefile owns:\n%s\n' "$reserved"
		return 1
	fi
	# Parse and expand every recipe without running anything.
	make --no-print-directory -n -f ops.mk up down stats monitoring-up monitoring-down \
		k8s-build k8s-deploy-kind k8s-deploy-1m k8s-status k8s-logs k8s-dashboard k8s-cleanup check-ops >/dev/null
	grep -cE '^[a-zA-Z0-9_-]+:.*## ' ops.mk | sed 's/$/ documented targets/'
}
if have make; then
	check "ops.mk (parses, no reserved targets)" ops_mk_check
else
	skip ops.mk "make not installed"
fi

# expect_answer WANT_RC WANT_TEXT CMD...: CMD exits WANT_RC and says WANT_TEXT.
expect_answer() {
	local want_rc=$1 want=$2 out rc=0
	shift 2
	out=$("$@" 2>&1) || rc=$?
	printf '%s\n' "$out" | grep -v '^make: \*\*\*' | head -3
	if ((rc != want_rc)) || ! grep -qF -- "$want" <<<"$out"; then
		printf 'want exit %d and "%s", got exit %d\n' "$want_rc" "$want" "$rc"
		return 1
	fi
}
# The seed's commands on a machine without Docker or a cluster answer with
# what is missing (none of these reaches Docker or a cluster).
seed_commands_answer() {
	local m=(env -u CONNECTIONS -u WORKER_HOST_PORTS -u WORKER_INSTANCES make --no-print-directory)
	expect_answer 2 "unknown suite nosuch" scripts/benchmark.sh nosuch &&
		expect_answer 2 "rate needs a rate" scripts/benchmark.sh rate &&
		expect_answer 2 "CONNECTIONS=5 is ambiguous" "${m[@]}" up CONNECTIONS=5 DOCKER=/nonexistent/docker &&
		expect_answer 2 "WORKER_INSTANCES=11 needs 11 host ports" "${m[@]}" up WORKER_INSTANCES=11 DOCKER=/nonexistent/docker &&
		expect_answer 2 "split the shards on Kubernetes (k8s/overlays/shard-split" "${m[@]}" up SHARED_SUBSCRIPTION=false WORKER_INSTANCES=2 DOCKER=/nonexistent/docker &&
		expect_answer 2 "Docker is not installed" "${m[@]}" up DOCKER=/nonexistent/docker &&
		expect_answer 2 "Docker is not installed" "${m[@]}" monitoring-up DOCKER=/nonexistent/docker &&
		expect_answer 2 "Docker Compose v2 plugin is missing" "${m[@]}" down DOCKER=true DOCKER_COMPOSE=false &&
		expect_answer 2 "No Docker daemon answers" "${m[@]}" up DOCKER=false DOCKER_COMPOSE=true &&
		if have kubectl; then
			expect_answer 2 "no Kubernetes context" env KUBECONFIG="$TMP/no-kubeconfig" "${m[@]}" k8s-status
		fi
}
if have make; then
	check "seed commands answer clearly (benchmark.sh, make up/down/monitoring-up, k8s-status)" seed_commands_answer
fi

help_check() {
	local out
	out=$(make --no-print-directory help)
	printf '%s\n' "$out" | sed -n '3,5p'
	if grep -q $'\033' <<<"$out"; then echo "colour codes in piped make help"; return 1; fi
	if grep -qi 'seed name' <<<"$out"; then echo '"seed name" in make help'; return 1; fi
	[[ $(grep -E '^  [a-z]' <<<"$out" | head -2 | awk '{ print $1 }' | tr '\n' ' ') == "run test " ]] ||
		{ echo "make help does not start with run and test"; return 1; }
}
if have make; then
	check "make help: run and test first, no colour when piped" help_check
fi

# The benchmark suite's plumbing: quick with 2 s runs leaves a results folder
# with summary.csv, manifest.json and a chart (binaries built into a temp dir).
benchmark_smoke() {
	local c out=$TMP/results
	for c in loadgen-v2 worker-v2 cmd/rr-local cmd/rr-chart cmd/rr-echo; do
		go build -o "$TMP/bin/${c##*/}" "./$c" || return
	done
	BIN=$TMP/bin OUT=$out SECS=2 scripts/benchmark.sh quick >"$TMP/bench.out" 2>&1 || { tail -20 "$TMP/bench.out"; return 1; }
	grep -E '^quick-|^results in' "$TMP/bench.out"
	jq -e '.suite == "quick" and (.git.commit | length) > 0 and .machine.cores > 0 and .finished_utc != null' "$out/manifest.json" >/dev/null &&
		[[ $(head -1 "$out/summary.csv") == step,broker,* ]] && (($(wc -l <"$out/summary.csv") >= 2)) &&
		grep -q '<svg' "$out/spectrum.svg" && grep -q 'class="series"' "$out/spectrum.svg"
}
if have go && have jq && have curl && have python3; then
	check "scripts/benchmark.sh quick (SECS=2): results folder with summary.csv, manifest.json, spectrum.svg" benchmark_smoke
else
	skip "benchmark.sh smoke run" "go, jq, curl or python3 missing"
fi

# --- web dashboard ---------------------------------------------------------------

html_self_contained() {
	local html=monitoring/dashboard.html
	if grep -nEi '<(script|link|img|iframe)[^>]+(src|href)=|@import|url\(' "$html"; then
		echo "dashboard.html loads external resources (above)"
		return 1
	fi
	echo "no external scripts, styles, fonts or images"
}
check "dashboard.html is self-contained" html_self_contained

if have node && have python3; then
	js_syntax() {
		python3 -c '
import re, sys
html = open("monitoring/dashboard.html").read()
scripts = re.findall(r"<script>(.*?)</script>", html, re.S)
assert scripts, "no inline script"
open(sys.argv[1], "w").write("\n".join(scripts))
' "$TMP/dashboard.js" && node --check "$TMP/dashboard.js" && echo "inline script parses"
	}
	check "dashboard.html script syntax (node --check)" js_syntax
else
	skip "dashboard.html script syntax" "node or python3 not installed"
fi

CHROMIUM=
for c in chromium chromium-browser google-chrome; do
	if have "$c"; then
		CHROMIUM=$c
		break
	fi
done
# start_fixture_server: serves fixed JSON for /debug/vars and /stats on a
# free loopback port and sets PORT. Stopped on exit. (Not called in $(...):
# SERVER_PID must be set in this shell for the cleanup trap.)
start_fixture_server() {
	mkdir -p "$TMP/www/debug" "$TMP/www/bad/debug"
	cat >"$TMP/www/debug/vars" <<'EOF'
{"loadgen":{"instance_id":"loadgen-v2-0","running":true,"virtual_clients":100000,"connections":100,"connections_up":100,"target_rps":50000,"rate_rps":50012.5,"requests_sent":1200000,"responses_matched":1199700,"timeouts":300,"skipped":12,"send_failed":0,"pending":480,"match_rate":0.99975,"latency_ms":{"count":0,"p50":4.2,"p90":7.9,"p99":18.25,"p999":41.5,"max":87}}}
EOF
	cat >"$TMP/www/stats" <<'EOF'
{"workers":42,"min_workers":10,"max_workers":1000,"queue_depth":1500,"queue_cap":100000,"in_flight":3,"received":1199010,"processed":1199000,"dropped_full":0,"malformed":0,"reply_failed":1,"abandoned":0,"rate_rps":49990,"connections_up":10,"connections":10,"mode":"health","draining":false,"scaling_events":[{"time":"2026-01-01T00:00:00Z","from":10,"to":12,"reason":"queue 75%"},{"time":"2026-01-01T00:00:01Z","from":12,"to":42,"reason":"queue 80%"}]}
EOF
	echo '{"cmdline":[]}' >"$TMP/www/bad/debug/vars"
	python3 -u -c '
import functools, http.server, sys
class H(http.server.SimpleHTTPRequestHandler):
    def end_headers(self):
        self.send_header("Access-Control-Allow-Origin", "*")
        super().end_headers()
    def log_message(self, *a):
        pass
s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(H, directory=sys.argv[1]))
print(s.server_address[1], flush=True)
s.serve_forever()
' "$TMP/www" >"$TMP/port" 2>/dev/null &
	SERVER_PID=$!
	local tries=50
	until [[ -s $TMP/port ]] || ((tries-- == 0)); do sleep 0.1; done
	PORT=$(cat "$TMP/port")
}

PORT=
if have python3; then
	start_fixture_server
fi
# Port 9 (discard) on loopback: nothing listens there.
readonly DEAD=http://127.0.0.1:9

if [[ -n $CHROMIUM ]]; then
	render_dom() { # URL_QUERY: the DOM after 5 s of (virtual) polling
		timeout 60 "$CHROMIUM" --headless --no-sandbox --disable-gpu --disable-background-networking \
			--disable-component-update --disable-sync --no-first-run --virtual-time-budget=5000 \
			--dump-dom "file://$ROOT/monitoring/dashboard.html?$1" 2>/dev/null
	}
	html_down() {
		local dom
		dom=$(render_dom "loadgen=$DEAD&worker=$DEAD")
		# (the page's own script text contains the phrase too; match the URL)
		grep -o 'Not reachable: http[^<]*' <<<"$dom" | sort -u
		[[ $(grep -o 'Not reachable: http' <<<"$dom" | wc -l) -eq 2 ]]
	}
	check "dashboard.html shows 'not reachable' when endpoints are down ($CHROMIUM)" html_down
	if [[ -n $PORT ]]; then
		html_up() {
			local dom
			dom=$(render_dom "loadgen=http://127.0.0.1:$PORT&worker=http://127.0.0.1:$PORT")
			grep -q '99.975%' <<<"$dom" && grep -q '18.3<small>ms' <<<"$dom" && grep -q '>42<' <<<"$dom" &&
				grep -q '12 → 42' <<<"$dom" && ! grep -q 'Not reachable: http' <<<"$dom" &&
				echo "match rate 99.975%, p99 18.3 ms, 42 workers, last scaling 12 → 42 rendered"
		}
		check "dashboard.html renders live numbers ($CHROMIUM, fixture server)" html_up
	fi
else
	skip "dashboard.html in a headless browser" "chromium not installed"
fi

# --- terminal dashboard -------------------------------------------------------------

dash_down() {
	local out rc=0
	out=$(LOADGEN_URL=$DEAD WORKER_URL=$DEAD scripts/dashboard.sh --once) || rc=$?
	printf '%s\n' "$out"
	((rc == 1)) && [[ $(grep -c 'NOT REACHABLE' <<<"$out") -eq 2 ]]
}
check "scripts/dashboard.sh --once, endpoints down: exit 1, NOT REACHABLE" dash_down

if [[ -n $PORT ]]; then
	dash_up() { # JSON_TOOL HTTP_TOOL
		local out
		out=$(LOADGEN_URL=http://127.0.0.1:$PORT WORKER_URL=http://127.0.0.1:$PORT \
			DASHBOARD_JSON_TOOL=$1 DASHBOARD_HTTP_TOOL=$2 scripts/dashboard.sh --once) || return
		printf '%s\n' "$out"
		grep -q 'match rate 99.975%' <<<"$out" && grep -q 'p99 18.25' <<<"$out" &&
			grep -q 'workers 42' <<<"$out" && grep -q 'queue 1500 / 100000 (1.5%)' <<<"$out" &&
			grep -q 'scaling events 2 (last: 12->42 queue 80%)' <<<"$out" && grep -q 'instance loadgen-v2-0' <<<"$out"
	}
	if have jq && have curl; then
		check "scripts/dashboard.sh --once with jq + curl (fixture server)" dash_up jq curl
	else
		skip "scripts/dashboard.sh with jq + curl" "jq or curl not installed"
	fi
	check "scripts/dashboard.sh --once with python3 only (fixture server)" dash_up python3 python3
	dash_bad() {
		local out rc=0
		out=$(LOADGEN_URL=http://127.0.0.1:$PORT/bad WORKER_URL=http://127.0.0.1:$PORT scripts/dashboard.sh --once) || rc=$?
		printf '%s\n' "$out" | grep 'UNEXPECTED'
		((rc == 1))
	}
	check "scripts/dashboard.sh --once, wrong JSON: UNEXPECTED RESPONSE" dash_bad
else
	skip "scripts/dashboard.sh against a fixture server" "python3 not available"
fi

printf '\ncheck-ops: %d passed, %d failed, %d skipped\n' "$PASSED" "$FAILED" "$SKIPPED"
((FAILED == 0))
