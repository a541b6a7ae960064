#!/usr/bin/env bash
# The Kubernetes manifests against a real control plane, without Docker or a
# cluster: kube-apiserver, kube-scheduler and kube-controller-manager built
# from k8s.io/kubernetes on the Go module proxy (module k8s/controlplane;
# cached in $KUBE_CACHE, ~3.5 min to build the first time on 2 cores), run
# on free loopback ports against Debian's etcd (package etcd-server), with
# three Node objects of 4 CPU / 8 GiB and no kubelet (the scheduler binds
# pods; nothing runs them). It checks:
#
#   1. every overlay (and the base) passes `kubectl apply --dry-run=server`;
#   2. the 1m overlay, really created, gets every pod scheduled (nodeName
#      set), as the README promises, and prints pods, CPU and memory
#      requested per node;
#   3. the fleet Job (overlays/fleet), really created once the soak
#      StatefulSet is gone, gets FLEET_SIZE pods with the completion indexes
#      0..N-1, each scheduled.
#
# Run by scripts/check-ops.sh (never by make test). Everything runs in a
# temporary directory and is stopped on exit; each wait is bounded.
# Exit status: 0 all held, 1 a check failed (named), 2 a tool is missing.
set -euo pipefail

readonly KUBE_VERSION=1.34.4
KUBE_CACHE=${KUBE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mqtt-rr-bench/kube-$KUBE_VERSION}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
KUBECTL=${KUBECTL:-kubectl}
NS=mqtt-rr-bench

say() { printf '==> %s\n' "$*" >&2; }
fail() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }
for t in etcd openssl "$KUBECTL" go python3; do
	command -v "$t" >/dev/null || { echo "k8s-apiserver-check: $t is missing (apt-get install etcd-server openssl kubernetes-client golang python3)" >&2; exit 2; }
done

bins=(kube-apiserver kube-scheduler kube-controller-manager)
build=0
for b in "${bins[@]}"; do [[ -x $KUBE_CACHE/$b ]] || build=1; done
if ((build)); then
	say "building the control plane $KUBE_VERSION into $KUBE_CACHE (once; ~3.5 min on 2 cores)"
	mkdir -p "$KUBE_CACHE"
	(cd "$ROOT/k8s/controlplane" && GOWORK=off GOFLAGS=-mod=mod go build -o "$KUBE_CACHE/" \
		k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kube-controller-manager)
fi

TMP=$(mktemp -d)
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$TMP"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# wait_for WHAT SECONDS CMD...: polls CMD every half second.
wait_for() {
	local what=$1 limit=$(($(date +%s) + $2))
	shift 2
	until "$@" >/dev/null 2>&1; do
		(($(date +%s) < limit)) || fail "$what: not within the time allowed (logs in $TMP kept: see below)"
		sleep 0.5
	done
}

etcd_client=$(free_port) etcd_peer=$(free_port) api=$(free_port)
say "etcd on 127.0.0.1:$etcd_client"
etcd --data-dir "$TMP/etcd" --listen-client-urls "http://127.0.0.1:$etcd_client" --advertise-client-urls "http://127.0.0.1:$etcd_client" \
	--listen-peer-urls "http://127.0.0.1:$etcd_peer" >"$TMP/etcd.log" 2>&1 &
PIDS+=($!)

openssl genrsa -out "$TMP/sa.key" 2048 2>/dev/null
openssl rsa -in "$TMP/sa.key" -pubout -out "$TMP/sa.pub" 2>/dev/null
token=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
echo "$token,admin,admin,system:masters" >"$TMP/tokens.csv"
say "kube-apiserver $KUBE_VERSION on https://127.0.0.1:$api"
"$KUBE_CACHE/kube-apiserver" --etcd-servers "http://127.0.0.1:$etcd_client" --bind-address 127.0.0.1 --advertise-address 127.0.0.1 \
	--secure-port "$api" --cert-dir "$TMP/certs" --token-auth-file "$TMP/tokens.csv" --authorization-mode AlwaysAllow \
	--service-account-issuer https://kubernetes.default.svc --service-account-key-file "$TMP/sa.pub" \
	--service-account-signing-key-file "$TMP/sa.key" --service-cluster-ip-range 10.96.0.0/16 >"$TMP/apiserver.log" 2>&1 &
PIDS+=($!)

cat >"$TMP/kubeconfig" <<CONF
apiVersion: v1
kind: Config
clusters: [{name: local, cluster: {server: "https://127.0.0.1:$api", insecure-skip-tls-verify: true}}]
users: [{name: admin, user: {token: "$token"}}]
contexts: [{name: local, context: {cluster: local, user: admin}}]
current-context: local
CONF
export KUBECONFIG=$TMP/kubeconfig
k() { "$KUBECTL" "$@"; }
show_logs() { for f in "$TMP"/*.log; do echo "--- ${f##*/}" >&2; tail -20 "$f" >&2; done; }
on_exit() {
	local rc=$?
	if ((rc != 0)); then show_logs; fi
	cleanup
	exit "$rc"
}
trap on_exit EXIT
wait_for "kube-apiserver ready" 120 k get --raw /readyz

"$KUBE_CACHE/kube-scheduler" --kubeconfig "$TMP/kubeconfig" --leader-elect=false --secure-port "$(free_port)" --bind-address 127.0.0.1 >"$TMP/scheduler.log" 2>&1 &
PIDS+=($!)
"$KUBE_CACHE/kube-controller-manager" --kubeconfig "$TMP/kubeconfig" --leader-elect=false --controllers='*,-nodelifecycle' \
	--service-account-private-key-file "$TMP/sa.key" --use-service-account-credentials=false \
	--secure-port "$(free_port)" --bind-address 127.0.0.1 >"$TMP/controller-manager.log" 2>&1 &
PIDS+=($!)
wait_for "the default namespace" 60 k get namespace default
wait_for "the default service account" 60 k -n default get serviceaccount default

say "three nodes of 4 CPU / 8 GiB (no kubelet)"
for i in 1 2 3; do
	k apply -f - >/dev/null <<NODE
apiVersion: v1
kind: Node
metadata: {name: node-$i, labels: {kubernetes.io/hostname: node-$i, kubernetes.io/os: linux, kubernetes.io/arch: amd64}}
NODE
	# (Debian's kubectl 1.20 cannot patch a status: the raw API can)
	python3 - "$i" "$TMP/kubeconfig" <<'PY' >/dev/null
import json, sys, ssl, urllib.request, re
i, cfg = sys.argv[1], open(sys.argv[2]).read()
server = re.search(r'server: "([^"]+)"', cfg).group(1)
token = re.search(r'token: "([^"]+)"', cfg).group(1)
body = json.dumps({"status": {"capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"},
                              "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
                              "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "no kubelet: a check"}]}}).encode()
req = urllib.request.Request(f"{server}/api/v1/nodes/node-{i}/status", data=body, method="PATCH",
                             headers={"Authorization": "Bearer " + token, "Content-Type": "application/merge-patch+json"})
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
urllib.request.urlopen(req, context=ctx).read()
PY
	k taint node "node-$i" node.kubernetes.io/not-ready- >/dev/null 2>&1 || true
done

render() { k kustomize --load-restrictor LoadRestrictionsNone "$1"; }

say "1. server-side dry run of the base and every overlay"
# only_kind KIND: the documents of that kind of a rendering on stdin.
only_kind() {
	python3 -c '
import re, sys
docs = [d for d in sys.stdin.read().split("\n---\n") if re.search(r"^kind: " + sys.argv[1] + r"\s*$", d, re.M)]
print("\n---\n".join(docs))' "$1"
}
for d in "$ROOT/k8s" "$ROOT"/k8s/overlays/*/; do
	d=${d%/}
	render "$d" >"$TMP/render.yaml" || fail "kustomize ${d#"$ROOT"/}"
	# (a dry run creates nothing: the namespaces its objects go into must exist)
	only_kind Namespace <"$TMP/render.yaml" | k apply -f - >/dev/null
	if ! k apply --dry-run=server -f "$TMP/render.yaml" >"$TMP/dry.out" 2>&1; then
		cat "$TMP/dry.out" >&2
		fail "kubectl apply --dry-run=server: ${d#"$ROOT"/} (above)"
	fi
	echo "  ${d#"$ROOT"/}: $(grep -c . "$TMP/dry.out") objects accepted"
done

# scheduled NS: every pod of the namespace has a node (and there is one).
all_scheduled() {
	local pods
	pods=$(k -n "$NS" get pods -o jsonpath='{range .items[*]}{.metadata.name}={.spec.nodeName}{"\n"}{end}')
	[[ -n $pods ]] && ! grep -q '=$' <<<"$pods"
}

say "2. the 1m overlay, created: every pod scheduled"
render "$ROOT/k8s/overlays/1m" | k apply -f - >/dev/null
k -n "$NS" create secret generic emqx-secrets --from-literal=node-cookie=check --from-literal=dashboard-password=check >/dev/null 2>&1 || true
want=$(render "$ROOT/k8s/overlays/1m" | python3 -c '
import sys, re
n = 0
for doc in sys.stdin.read().split("\n---\n"):
    kind = re.search(r"^kind: (\w+)", doc, re.M)
    rep = re.search(r"^  replicas: (\d+)", doc, re.M)
    if kind and kind.group(1) in ("StatefulSet", "Deployment"):
        n += int(rep.group(1)) if rep else 1
print(n)')
count_pods() { [[ $(k -n "$NS" get pods --no-headers 2>/dev/null | wc -l) -ge $want ]]; }
wait_for "the 1m overlay's $want pods created" 180 count_pods
wait_for "the 1m overlay's pods all scheduled" 180 all_scheduled
k -n "$NS" get pods -o json | python3 -c '
import json, sys
def cpu(v): return float(v[:-1]) / 1000 if v.endswith("m") else float(v)
def mem(v):
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
    for u, m in units.items():
        if v.endswith(u): return float(v[:-2]) * m
    return float(v)
nodes = {}
for p in json.load(sys.stdin)["items"]:
    n = nodes.setdefault(p["spec"]["nodeName"], {"pods": [], "cpu": 0.0, "mem": 0.0})
    n["pods"].append(p["metadata"]["name"])
    for c in p["spec"]["containers"]:
        r = c.get("resources", {}).get("requests", {})
        n["cpu"] += cpu(r.get("cpu", "0")); n["mem"] += mem(r.get("memory", "0"))
total = sum(len(n["pods"]) for n in nodes.values())
print(f"  {total} pods scheduled on {len(nodes)} nodes (4 CPU / 8 GiB each):")
for name in sorted(nodes):
    n = nodes[name]
    pods, c, m = sorted(n["pods"]), n["cpu"], n["mem"]
    print("  %s: %2d pods, CPU requested %.2f (%.0f%%), memory %.2f GiB (%.0f%%): %s" % (name, len(pods), c, 100 * c / 4, m / 2**30, 100 * m / (8 * 2**30), " ".join(pods)))
'

say "3. the fleet Job: its pods get the completion indexes 0..N-1"
k -n "$NS" delete statefulset loadgen --wait=false >/dev/null
k -n "$NS" delete pods -l app.kubernetes.io/name=loadgen --grace-period=0 --force >/dev/null 2>&1 || true
render "$ROOT/k8s/overlays/fleet" | only_kind Job | k apply -f - >/dev/null
size=$(k -n "$NS" get job loadgen-fleet -o jsonpath='{.spec.completions}')
job_pods() {
	k -n "$NS" get pods -l batch.kubernetes.io/job-name=loadgen-fleet \
		-o jsonpath='{range .items[*]}{.metadata.annotations.batch\.kubernetes\.io/job-completion-index}={.spec.nodeName}{"\n"}{end}'
}
job_ready() { local p; p=$(job_pods); [[ $(grep -c . <<<"$p") -eq $size ]] && ! grep -q '=$' <<<"$p"; }
wait_for "the fleet Job's $size pods created and scheduled" 180 job_ready
got=$(job_pods | cut -d= -f1 | sort -n | tr '\n' ' ')
exp=$(seq 0 $((size - 1)) | tr '\n' ' ')
[[ $got == "$exp" ]] || fail "the fleet Job's completion indexes are '$got', want '$exp'"
echo "  Job loadgen-fleet: $size pods, completion indexes ${got% }, every one scheduled:"
job_pods | sort -n | awk -F= '{ printf "    index %s on %s\n", $1, $2 }'
say "all control-plane checks held (kube-apiserver $KUBE_VERSION, etcd $(etcd --version | awk 'NR == 1 { print $3 }'))"
