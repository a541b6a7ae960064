#!/usr/bin/env bash
# One fleet run with Docker Compose (make up-fleet): EMQX and worker-v2 from
# docker-compose.production.yml, then LOADGEN_INSTANCES one-off loadgen-v2
# containers as one fleet (FLEET_ID fleet-TIME, FLEET_INDEX 0..N-1, client
# ids from FLEET_INDEX x VIRTUAL_CLIENTS). None of them restarts: a fleet
# run has a fixed length (FLEET_DURATION, default 60s) from its common start.
# Index 0 coordinates; its output (the merged report) and FLEET_RESULTS
# (every instance's report, merged.json, merged.txt) land in
# results/fleet-TIME/, and this script exits with the fleet's verdict:
# 0, 3 (an SLO missed or an instance missing, named), 2 (the fleet refused:
# a duplicate index or different settings), 1.
#
# Environment (set by make): COMPOSE (the compose command with -p and -f),
# DOCKER, COMPOSE_PROJECT, LOADGEN_INSTANCES, WORKER_INSTANCES,
# FLEET_DURATION; every loadgen-v2 variable passes through Compose.
set -euo pipefail
: "${COMPOSE:?set by make up-fleet}" "${DOCKER:=docker}" "${COMPOSE_PROJECT:=mqtt-rr-bench}"
n=${LOADGEN_INSTANCES:-3} workers=${WORKER_INSTANCES:-1} duration=${FLEET_DURATION:-60s}
case $n in '' | *[!0-9]* | 0) echo "LOADGEN_INSTANCES=$n must be a whole number of at least 1" >&2; exit 2 ;; esac
case $workers in '' | *[!0-9]*) echo "WORKER_INSTANCES=$workers must be a whole number" >&2; exit 2 ;; esac
read -r -a compose <<<"$COMPOSE"
id=fleet-$(date -u +%Y%m%dt%H%M%Sz)
out=results/$id
mkdir -p "$out"
echo "fleet $id: $n loadgens, $workers worker(s), $duration from the common start; results in $out" >&2
"${compose[@]}" up -d --build --scale "worker-v2=$workers" emqx worker-v2
names=()
# shellcheck disable=SC2317 # (called by the EXIT trap)
cleanup() { for c in "${names[@]}"; do "$DOCKER" rm -f "$c" >/dev/null 2>&1 || true; done; }
trap cleanup EXIT
fleet_env=(-e "FLEET_ID=$id" -e "FLEET_SIZE=$n" -e CLIENT_ID_OFFSET=0 -e "DURATION=$duration" -e METRICS_LINGER=0)
for ((i = 1; i < n; i++)); do
	name=$COMPOSE_PROJECT-loadgen-v2-$id-$i
	names+=("$name")
	"${compose[@]}" run -d --no-deps --use-aliases --name "$name" "${fleet_env[@]}" \
		-e "FLEET_INDEX=$i" -e "INSTANCE_ID=loadgen-v2-$i" loadgen-v2 >/dev/null
done
name0=$COMPOSE_PROJECT-loadgen-v2-$id-0
names+=("$name0")
code=0
"${compose[@]}" run --no-deps --use-aliases --name "$name0" "${fleet_env[@]}" \
	-e FLEET_INDEX=0 -e INSTANCE_ID=loadgen-v2-0 -e "FLEET_RESULTS=/reports/$id" loadgen-v2 >"$out/loadgen-0.txt" 2>"$out/loadgen-0.log" || code=$?
"$DOCKER" cp "$name0:/reports/$id/." "$out/" 2>/dev/null || echo "the fleet's results could not be copied out of $name0 (see $out/loadgen-0.log)" >&2
for ((i = 1; i < n; i++)); do
	"$DOCKER" logs "$COMPOSE_PROJECT-loadgen-v2-$id-$i" >"$out/loadgen-$i.log" 2>&1 || true
done
sed -n '/^=== Fleet /,$p' "$out/loadgen-0.txt"
echo "fleet $id: exit status $code; results in $out" >&2
exit "$code"
