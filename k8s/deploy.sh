#!/usr/bin/env bash
# Build, deploy and inspect mqtt-rr-bench on Kubernetes.
#
#   k8s/deploy.sh build     build both images; load them into the kind cluster
#                           if there is one, push them if IMAGE_REGISTRY is set
#   k8s/deploy.sh kind      deploy k8s/overlays/kind (10k clients) to kind
#   k8s/deploy.sh 1m        deploy k8s/overlays/1m (1M clients: 10 loadgen
#                           pods x 100k) to the current kubectl context
#   k8s/deploy.sh fleet     one fleet run (k8s/overlays/fleet: EMQX, workers, the
#                           loadgens as an Indexed Job of FLEET_SIZE pods): waits
#                           for it, prints the merged report, copies it, every
#                           instance's report and log into results/fleet-TIME/,
#                           and exits with the fleet's verdict (index 0's status)
#   k8s/deploy.sh status    pods, services, HPA, EMQX cluster, loadgen numbers
#   k8s/deploy.sh logs [emqx|worker|loadgen|all] [-f]
#   k8s/deploy.sh dashboard the EMQX dashboard on http://127.0.0.1:18083
#                           (port-forward; prints the admin password)
#   k8s/deploy.sh cleanup   delete the namespace (and the kind cluster with
#                           KIND_DELETE_CLUSTER=1)
#
# Environment:
#   KUBE_CONTEXT    kubeconfig context to use   (default: the current one;
#                   "kind" uses kind-$KIND_CLUSTER unless this is set)
#   KIND_CLUSTER    kind cluster name                       (default: kind)
#   IMAGE_REGISTRY  registry prefix for the images, e.g. ghcr.io/acme;
#                   required by "1m" unless the nodes already have the images
#   IMAGE_TAG       image tag          (default: the VERSION file, e.g. 0.1.0)
#   DOCKER          container CLI                           (default: docker)
#   KUBECTL         kubectl binary                          (default: kubectl)
#   ROLLOUT_TIMEOUT how long to wait for each rollout       (default: 10m)
#   FLEET_SIZE      fleet: loadgen pods (parallelism = completions)  (default: 10)
#   FLEET_WAIT      fleet: how long to wait for the Job to finish   (default: 30m)
#
# The overlay lives below the manifests it patches, so it is rendered with
# `kubectl kustomize --load-restrictor LoadRestrictionsNone` (what this
# script does); plain `kubectl apply -k k8s/` works for the base.
set -euo pipefail

readonly NAMESPACE=mqtt-rr-bench
readonly IMAGES=(loadgen-v2 worker-v2)

SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd -- "$SCRIPT_DIR/.." && pwd)
readonly SCRIPT_DIR REPO_ROOT

KUBE_CONTEXT=${KUBE_CONTEXT:-}
ACTION="k8s/deploy.sh" # what the user ran, for messages (main sets it)
KIND_CLUSTER=${KIND_CLUSTER:-kind}
IMAGE_REGISTRY=${IMAGE_REGISTRY:-}
IMAGE_TAG=${IMAGE_TAG:-$(cat "$REPO_ROOT/VERSION" 2>/dev/null || echo dev)}
DASHBOARD_PORT=${DASHBOARD_PORT:-18083}
DOCKER=${DOCKER:-docker}
KUBECTL=${KUBECTL:-kubectl}
ROLLOUT_TIMEOUT=${ROLLOUT_TIMEOUT:-10m}

log() { printf '==> %s\n' "$*" >&2; }
warn() { printf 'warning: %s\n' "$*" >&2; }
die() {
	printf 'error: %s\n' "$*" >&2
	exit 1
}

# k runs kubectl against $KUBE_CONTEXT (the current context when empty).
k() {
	if [[ -n $KUBE_CONTEXT ]]; then
		"$KUBECTL" --context "$KUBE_CONTEXT" "$@"
	else
		"$KUBECTL" "$@"
	fi
}

# need CMD...: every CMD is installed; else stops naming each missing one
# with where to get it, and how to run the benchmark without it.
need() {
	local cmd missing=() no_kind=0 no_kubectl=0 no_docker=0
	for cmd in "$@"; do
		command -v "$cmd" >/dev/null 2>&1 || missing+=("$cmd")
	done
	((${#missing[@]} == 0)) && return 0
	{
		printf 'error: %s needs what is not installed here:\n' "$ACTION"
		for cmd in "${missing[@]}"; do
			case $cmd in
			kind)
				no_kind=1
				printf "  - kind ('kind' not found): https://kind.sigs.k8s.io/docs/user/quick-start/#installation\n"
				printf "    (or: go install sigs.k8s.io/kind@latest)\n"
				;;
			"$KUBECTL")
				no_kubectl=1
				printf "  - kubectl ('%s' not found): https://kubernetes.io/docs/tasks/tools/\n" "$cmd"
				;;
			"$DOCKER")
				no_docker=1
				printf "  - docker ('%s' not found): Docker Engine, https://docs.docker.com/engine/install/\n" "$cmd"
				;;
			*) printf "  - '%s'\n" "$cmd" ;;
			esac
		done
		echo "Without them:"
		if ((no_kind && !no_kubectl)); then
			echo "  - make k8s-deploy-1m deploys to any cluster kubectl reaches (kubectl config use-context NAME)"
		fi
		if ((!no_docker)); then
			echo "  - make up runs EMQX, the worker and the loadgen with Docker Compose on this host"
		fi
		echo "  - make run runs the benchmark on this machine with nothing but Go (embedded broker)"
	} >&2
	exit 1
}

# need_cluster: kubectl, a context, and an API server that answers; else
# says which is missing (instead of kubectl's retries against localhost:8080).
need_cluster() {
	need "$KUBECTL"
	local ctx=$KUBE_CONTEXT
	if [[ -z $ctx ]] && ! ctx=$("$KUBECTL" config current-context 2>/dev/null); then
		die "no Kubernetes context: kubectl has no current context. Create a cluster (kind create cluster, then make k8s-deploy-kind) or pick one (kubectl config get-contexts; kubectl config use-context NAME)"
	fi
	if ! k get --raw /version --request-timeout=5s >/dev/null 2>&1; then
		die "Kubernetes context '$ctx': the API server does not answer (kubectl cluster-info shows why)"
	fi
}

# need_docker: the container CLI and a daemon that answers.
need_docker() {
	need "$DOCKER"
	"$DOCKER" info >/dev/null 2>&1 ||
		die "no Docker daemon answers ('$DOCKER info' failed): start it (sudo systemctl start docker) or check that you may use it (the docker group, DOCKER_HOST)"
}

# image NAME prints the reference the cluster pulls for NAME.
image() {
	local ref="mqtt-rr-bench/$1:$IMAGE_TAG"
	if [[ -n $IMAGE_REGISTRY ]]; then
		ref="${IMAGE_REGISTRY%/}/$ref"
	fi
	printf '%s\n' "$ref"
}

kind_cluster_exists() {
	command -v kind >/dev/null 2>&1 && kind get clusters 2>/dev/null | grep -qx -- "$KIND_CLUSTER"
}

cmd_build() {
	need_docker
	local name ref
	for name in "${IMAGES[@]}"; do
		ref=$(image "$name")
		log "building $ref"
		"$DOCKER" build -f "$REPO_ROOT/$name/Dockerfile" -t "$ref" "$REPO_ROOT"
		if [[ -n $IMAGE_REGISTRY ]]; then
			log "pushing $ref"
			"$DOCKER" push "$ref"
		fi
	done
	if kind_cluster_exists; then
		for name in "${IMAGES[@]}"; do
			ref=$(image "$name")
			log "loading $ref into kind cluster '$KIND_CLUSTER'"
			kind load docker-image --name "$KIND_CLUSTER" "$ref"
		done
	elif [[ -z $IMAGE_REGISTRY ]]; then
		warn "no kind cluster '$KIND_CLUSTER' and no IMAGE_REGISTRY: the images exist only in the local Docker"
	fi
}

# render DIR prints the manifests of a kustomization with the
# image references (pinned to VERSION in the manifests) rewritten to
# $IMAGE_REGISTRY/.../$IMAGE_TAG.
render() {
	local dir=$1 name
	local -a sed_args=()
	for name in "${IMAGES[@]}"; do
		sed_args+=(-e "s#image: mqtt-rr-bench/$name:[^ ]*\$#image: $(image "$name")#")
	done
	k kustomize --load-restrictor LoadRestrictionsNone "$dir" | sed "${sed_args[@]}"
}

ensure_namespace() {
	if ! k get namespace "$NAMESPACE" >/dev/null 2>&1; then
		log "creating namespace $NAMESPACE"
		k apply -f "$SCRIPT_DIR/namespace.yaml"
	fi
}

random_hex() {
	# $1 bytes of randomness as hex; od is in every base system.
	head -c "$1" /dev/urandom | od -An -tx1 | tr -d ' \n'
}

ensure_secrets() {
	if k -n "$NAMESPACE" get secret emqx-secrets >/dev/null 2>&1; then
		return
	fi
	log "creating secret emqx-secrets (random Erlang cookie and dashboard password)"
	k -n "$NAMESPACE" create secret generic emqx-secrets \
		--from-literal=node-cookie="$(random_hex 24)" \
		--from-literal=dashboard-password="$(random_hex 12)" >/dev/null
	printf 'EMQX dashboard: user admin, password from\n  %s -n %s get secret emqx-secrets -o jsonpath={.data.dashboard-password} | base64 -d\n' \
		"$KUBECTL" "$NAMESPACE" >&2
}

check_metrics_server() {
	if ! k get apiservice v1beta1.metrics.k8s.io >/dev/null 2>&1; then
		warn "metrics-server is not installed: the worker HPA cannot read CPU and stays at minReplicas"
	fi
}

wait_rollouts() {
	local r
	for r in statefulset/emqx deployment/worker statefulset/loadgen; do
		log "waiting for $r"
		k -n "$NAMESPACE" rollout status "$r" --timeout="$ROLLOUT_TIMEOUT"
	done
}

deploy() {
	local dir=$1
	need_cluster
	log "context: ${KUBE_CONTEXT:-$(k config current-context)}"
	ensure_namespace
	ensure_secrets
	render "$dir" | k apply -f -
	check_metrics_server
	wait_rollouts
	cmd_status
}

cmd_kind() {
	# kind runs its nodes as containers: Docker, unless another provider is set.
	if [[ -n ${KIND_EXPERIMENTAL_PROVIDER:-} ]]; then
		need kind "$KUBECTL"
	else
		need kind "$KUBECTL" "$DOCKER"
	fi
	kind_cluster_exists || die "no kind cluster '$KIND_CLUSTER' (create it with: kind create cluster --name $KIND_CLUSTER)"
	KUBE_CONTEXT=${KUBE_CONTEXT:-kind-$KIND_CLUSTER}
	deploy "$SCRIPT_DIR/overlays/kind"
}

cmd_1m() {
	need_cluster
	local ctx
	ctx=${KUBE_CONTEXT:-$(k config current-context)}
	if [[ $ctx == kind-* ]]; then
		warn "context '$ctx' is a kind cluster; the 1M deployment requests ~8 CPUs and ~12 GiB"
	fi
	if [[ -z $IMAGE_REGISTRY ]]; then
		warn "IMAGE_REGISTRY is not set: nodes must already have mqtt-rr-bench/*:$IMAGE_TAG"
	fi
	deploy "$SCRIPT_DIR/overlays/1m"
}

# cmd_fleet deploys EMQX and the workers of overlays/fleet, then the fleet
# Job under a name of its own (loadgen-fleet-TIME, which is the FLEET_ID),
# waits until index 0 has finished, fetches the merged report it serves at
# /fleet/report during METRICS_LINGER through the API server proxy, keeps
# every pod's log in results/fleet-TIME/ and exits with index 0's status.
cmd_fleet() {
	need_cluster
	local size=${FLEET_SIZE:-10} wait=${FLEET_WAIT:-30m} stamp name out pod0 code phase i=0 limit
	[[ $size =~ ^[1-9][0-9]*$ ]] || die "FLEET_SIZE=$size is not a number of loadgen pods"
	stamp=$(date -u +%Y%m%dt%H%M%Sz)
	name=loadgen-fleet-$stamp
	out=$REPO_ROOT/results/fleet-$stamp
	mkdir -p "$out"
	log "context: ${KUBE_CONTEXT:-$(k config current-context)}"
	ensure_namespace
	# The soak StatefulSet's pods own client ids from 0 too, and would load
	# the same broker: the fleet runs alone.
	local soak
	soak=$(k -n "$NAMESPACE" get statefulset loadgen -o jsonpath='{.spec.replicas}' 2>/dev/null || true)
	if [[ -n $soak && $soak != 0 ]]; then
		die "the soak StatefulSet loadgen runs $soak pod(s) in namespace $NAMESPACE: they use the fleet's client ids (from 0) and load the same broker. Scale it to 0 first (kubectl -n $NAMESPACE scale statefulset loadgen --replicas=0), then run make k8s-fleet-run again"
	fi
	ensure_secrets
	# Everything but the Job first (EMQX, workers), then the Job renamed.
	render "$SCRIPT_DIR/overlays/fleet" >"$out/manifests.yaml"
	k apply -f <(awk 'BEGIN { RS = "\n---\n"; ORS = "\n---\n" } !/\nkind: Job\n/' "$out/manifests.yaml")
	for r in statefulset/emqx deployment/worker; do
		log "waiting for $r"
		k -n "$NAMESPACE" rollout status "$r" --timeout="$ROLLOUT_TIMEOUT"
	done
	awk 'BEGIN { RS = "\n---\n"; ORS = "\n---\n" } /\nkind: Job\n/' "$out/manifests.yaml" |
		sed -e "s/^  name: loadgen-fleet\$/  name: $name/" \
			-e "s/^  completions: [0-9]*\$/  completions: $size/" -e "s/^  parallelism: [0-9]*\$/  parallelism: $size/" \
			-e "/- name: FLEET_SIZE\$/{n;s/value: .*/value: \"$size\"/;}" >"$out/job.yaml"
	k apply -f "$out/job.yaml"
	log "fleet $name: $size loadgen pods; waiting up to $wait for index 0"
	limit=$(($(date +%s) + $(duration_seconds "$wait")))
	pod0=""
	while :; do
		pod0=$(k -n "$NAMESPACE" get pods -l "batch.kubernetes.io/job-name=$name,batch.kubernetes.io/job-completion-index=0" -o name 2>/dev/null | head -1)
		if [[ -n $pod0 ]]; then
			phase=$(k -n "$NAMESPACE" get "$pod0" -o jsonpath='{.status.containerStatuses[0].state.terminated.exitCode}{" "}{.status.phase}' 2>/dev/null || true)
			# The merged report, while index 0 lingers after its report.
			if [[ ! -s $out/merged.json ]] && k -n "$NAMESPACE" get --raw "/api/v1/namespaces/$NAMESPACE/pods/${pod0#pod/}:8090/proxy/fleet/report" >"$out/merged.json.tmp" 2>/dev/null; then
				mv "$out/merged.json.tmp" "$out/merged.json"
				log "merged report saved: $out/merged.json"
			fi
			case $phase in [0-9]*) break ;; esac
		fi
		(($(date +%s) < limit)) || die "fleet $name: index 0 did not finish within FLEET_WAIT=$wait; see $ACTION (k8s/deploy.sh status) and kubectl -n $NAMESPACE describe job $name"
		sleep 5
		i=$((i + 1))
	done
	rm -f "$out/merged.json.tmp"
	code=${phase%% *}
	for p in $(k -n "$NAMESPACE" get pods -l "batch.kubernetes.io/job-name=$name" -o name); do
		k -n "$NAMESPACE" logs "$p" >"$out/${p#pod/}.log" 2>&1 || true
	done
	k -n "$NAMESPACE" logs "$pod0" | sed -n '/^=== Fleet /,$p'
	[[ -s $out/merged.json ]] || warn "the merged report could not be fetched from /fleet/report (METRICS_LINGER too short?); index 0's log has it as text: $out/${pod0#pod/}.log"
	log "fleet $name: exit status $code; results in $out"
	case $code in
	0 | 2 | 3) exit "$code" ;; # the fleet's verdict: SLOs met, refused, SLO missed or instance missing
	1) exit 1 ;;
	*)
		# Not a verdict: index 0 was killed (137: SIGKILL, an OOM kill or the
		# Job's deadline; 143: SIGTERM) before it could give one.
		warn "index 0 ($pod0) ended with status $code, a signal rather than a verdict: see kubectl -n $NAMESPACE describe $pod0 (OOMKilled raises the memory limit in k8s/loadgen-fleet.yaml; DeadlineExceeded its activeDeadlineSeconds)"
		exit 1
		;;
	esac
}

# duration_seconds D prints a Go-style duration (30m, 90s, 1h) in seconds.
duration_seconds() {
	case $1 in
	*h) echo $((${1%h} * 3600)) ;;
	*m) echo $((${1%m} * 60)) ;;
	*s) echo "${1%s}" ;;
	*) die "FLEET_WAIT=$1 is not a duration such as 30m, 90s or 1h" ;;
	esac
}

# loadgen_vars POD prints one pod's /debug/vars "loadgen" object as a line,
# fetched through the API server proxy (no port-forward needed).
loadgen_vars() {
	local raw
	raw=$(k get --raw "/api/v1/namespaces/$NAMESPACE/pods/$1:8090/proxy/debug/vars" 2>/dev/null) || {
		printf '%-12s not reachable\n' "$1"
		return
	}
	if command -v jq >/dev/null 2>&1; then
		jq -r --arg pod "$1" '.loadgen // {} |
			"\($pod)  sent=\(.requests_sent // 0)  matched=\(.responses_matched // 0)  timeouts=\(.timeouts // 0)  match_rate=\(.match_rate // 0)  rate_rps=\(.rate_rps // 0)  p99_ms=\(.latency_ms.p99 // 0)"' <<<"$raw"
	else
		printf '%-12s %s\n' "$1" "$raw"
	fi
}

cmd_status() {
	need_cluster
	if ! k get namespace "$NAMESPACE" >/dev/null 2>&1; then
		die "namespace $NAMESPACE does not exist in this cluster: deploy first (make k8s-deploy-kind or make k8s-deploy-1m)"
	fi
	k -n "$NAMESPACE" get pods,services,hpa,pdb -o wide
	printf '\n--- EMQX cluster\n'
	k -n "$NAMESPACE" exec emqx-0 -c emqx -- emqx ctl cluster status 2>/dev/null ||
		echo "emqx-0 not reachable"
	printf '\n--- loadgen (/debug/vars)\n'
	local pod
	for pod in $(k -n "$NAMESPACE" get pods -l app.kubernetes.io/name=loadgen \
		-o jsonpath='{range .items[*]}{.metadata.name}{"\n"}{end}'); do
		loadgen_vars "$pod"
	done
	printf '\n--- EMQX dashboard: make k8s-dashboard (http://127.0.0.1:%s, user admin)\n' "$DASHBOARD_PORT"
}

# cmd_dashboard: port-forwards the EMQX dashboard to 127.0.0.1 and prints
# the admin password from the emqx-secrets Secret.
cmd_dashboard() {
	need_cluster
	local pw
	pw=$(k -n "$NAMESPACE" get secret emqx-secrets -o jsonpath='{.data.dashboard-password}' 2>/dev/null | base64 -d 2>/dev/null) ||
		die "no secret emqx-secrets in namespace $NAMESPACE: deploy first (make k8s-deploy-kind or make k8s-deploy-1m)"
	printf 'EMQX dashboard: http://127.0.0.1:%s  user admin  password %s\n(Ctrl-C stops the port-forward)\n' "$DASHBOARD_PORT" "$pw" >&2
	k -n "$NAMESPACE" port-forward --address 127.0.0.1 service/emqx "$DASHBOARD_PORT:18083"
}

cmd_logs() {
	need_cluster
	local component=all follow=()
	local arg
	for arg in "$@"; do
		case $arg in
		-f | --follow) follow=(--follow) ;;
		emqx | worker | loadgen | all) component=$arg ;;
		*) die "logs: unknown argument '$arg' (want emqx, worker, loadgen, all, -f)" ;;
		esac
	done
	local selector=app.kubernetes.io/part-of=mqtt-rr-bench
	if [[ $component != all ]]; then
		selector=app.kubernetes.io/name=$component
	fi
	k -n "$NAMESPACE" logs -l "$selector" --all-containers --prefix \
		--tail=200 --max-log-requests=32 ${follow[@]+"${follow[@]}"}
}

cmd_cleanup() {
	need_cluster
	log "deleting namespace $NAMESPACE"
	k delete namespace "$NAMESPACE" --ignore-not-found --wait=true
	if [[ ${KIND_DELETE_CLUSTER:-0} == 1 ]] && kind_cluster_exists; then
		log "deleting kind cluster $KIND_CLUSTER"
		kind delete cluster --name "$KIND_CLUSTER"
	fi
}

usage() {
	sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p;}' "${BASH_SOURCE[0]}"
}

main() {
	local cmd=${1:-help}
	shift || true
	case $cmd in
	kind | 1m) ACTION="make k8s-deploy-$cmd" ;;
	fleet) ACTION="make k8s-fleet-run" ;;
	*) ACTION="make k8s-$cmd" ;;
	esac
	case $cmd in
	build) cmd_build ;;
	kind) cmd_kind ;;
	1m) cmd_1m ;;
	fleet) cmd_fleet ;;
	status) cmd_status ;;
	logs) cmd_logs "$@" ;;
	dashboard) cmd_dashboard ;;
	cleanup) cmd_cleanup ;;
	help | -h | --help) usage ;;
	*)
		usage >&2
		exit 2
		;;
	esac
}

main "$@"
