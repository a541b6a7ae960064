#!/usr/bin/env bash
# Benchmark suites: run bin/worker-v2 and bin/loadgen-v2 against a broker
# started here (Mosquitto with benchmark settings on a free loopback port, or
# the embedded broker via bin/rr-local), or only the loadgen against your own
# broker and service (BROKER_KIND=URL), and keep what they measured. Each
# suite writes one results folder: the loadgen's JSON report (and text
# report) of every step, summary.csv (one row per step), manifest.json (the
# exact configuration, git commit, Go and broker versions, CPU model, cores,
# memory, date), console.txt, and SVG charts drawn by bin/rr-chart.
#
#   scripts/benchmark.sh quick            per broker (Mosquitto and embedded): 10k req/s (10,000 clients every
#                                         1000 ms) for 10 s, the first 2 s a warm-up left out (8 s measured); < 1 min
#   scripts/benchmark.sh baseline         the seed's fixed 100,000 virtual clients every INTERVAL_MS (2000: 50k req/s), 60 s
#   scripts/benchmark.sh knee             the highest offered rate with p99 ≤ SLO_P99_MS and match ≥ SLO_MATCH_RATE:
#                                         doubling from KNEE_START, then bisection; prints the knee and the curve,
#                                         then runs half the knee and the ceiling
#   scripts/benchmark.sh ceiling          the same broker driven by bin/rr-echo, the simplest echo: round trips/s
#   scripts/benchmark.sh floor            the broker's own round trip (rr-echo 1 requester × 1 outstanding × 1
#                                         responder) and the pipeline at 1k, 10k and 20k req/s on the same broker,
#                                         per broker (Mosquitto and embedded): p50/p99, the loadgen's own lag,
#                                         the broker + network rest, and the ratio pipeline p50 / echo p50 at 1k
#   scripts/benchmark.sh rate R [S]       one run at R req/s for S seconds (default 20)
#   scripts/benchmark.sh sweep            rates 10k, 20k, ... 60k, one run each
#   scripts/benchmark.sh clients          100k → 200k → 500k virtual clients at 20k req/s
#   scripts/benchmark.sh mem1m            1,000,000 virtual clients at 10k req/s for 110 s (each fires): loadgen RSS
#   scripts/benchmark.sh autoscale        worker MODE=sleep SLEEP_MS=5 under 5k → 30k → 5k req/s (150 s):
#                                         workers, queue and processed rate every second, then the scaling events
#   scripts/benchmark.sh workercpu R [S]  CPU µs per round trip of the worker, the broker and the loadgen at R req/s
#                                         for S seconds (default 20), MODE=health; then the same run answered by the
#                                         plain paho echo responder (rr-echo respond), and the worker's ratio to it
#   scripts/benchmark.sh fleet [N] [R]    a fleet run: N loadgens (default 3) of FLEET_CLIENTS virtual clients each
#                                         (default 100000) offering R req/s in all (default 10000), started together
#                                         by 'loadgen-v2 fleet' (the coordinator) for SECS (default 110, so that every
#                                         client fires at least once at N=10); one merged report and one verdict
#                                         (the script exits with the fleet's status: 0, or 3 when it failed).
#                                         N=10 is the million-client headline: 10 × 100,000 at 10k req/s
#   scripts/benchmark.sh all              quick, knee, baseline, clients, mem1m and autoscale, one subfolder each
#
# Charts: spectrum.svg (the percentile spectrum of every step: latency against
# percentile on a log 1/(1-q) axis), latency-vs-rate.svg (p50, p90, p99,
# p99.9 and max against the offered rate, or latency-vs-clients.svg for
# clients; hollow markers missed the SLO), workers-queue.svg (autoscale: pool
# size, demand, queue depth, oldest queued request, processed rate, drops).
#
# Short forms: SECS sets the length of every run (defaults: quick 10, knee,
# ceiling, rate, sweep and workercpu 20, clients 30, baseline 60, mem1m 110);
# WARMUP (default 2s, 1s when SECS < 10) is left out of each report.
# autoscale is shortened with TOTAL_SECS, STEP_AT and STEP_SECS (below).
# E.g. SECS=5 scripts/benchmark.sh knee; SECS=3 scripts/benchmark.sh quick.
#
# knee: SLO_P99_MS (default 50) and SLO_MATCH_RATE (0.999; the success rate
# must meet it too) decide each step (the loadgen's own SLO verdict, books
# included); KNEE_START (5000 req/s) doubles up to KNEE_MAX (320000), then
# bisection until the failing rate is within KNEE_PRECISION (0.05) of the
# passing one. A rate passes if one of its runs did; it fails after two
# failed runs, one of them with CPU steal (the hypervisor's, per run in
# summary.csv) ≤ KNEE_MAX_STEAL (0.03), within KNEE_TRIES (4) runs;
# KNEE_CONFIRM=0 fails it at the first clean miss (bin/rr-knee decides, and
# keeps the search in logs/knee-search.json). KNEE_HALF=0 skips the run at
# half the knee, CEILING=0 the ceiling. Every run starts a fresh broker and
# worker. baseline, rate and sweep report against the same SLO.
# ceiling: ECHO_REQUESTERS (8 connections), ECHO_OUTSTANDING (64 each),
# ECHO_RESPONDERS (4), PAYLOAD_BYTES (16), QOS (0): see bin/rr-echo -h.
#
# autoscale: the worker runs with its defaults (QUEUE_CAP 100000, thresholds,
# SCALE_INTERVAL 1s, SCALE_MAX_WAIT 1s, SCALE_DOWN_WINDOW 30s) unless
# QUEUE_CAP, SCALE_INTERVAL, SCALE_MAX_WAIT or SCALE_DOWN_WINDOW are set;
# BASE_RATE (5000), STEP_RATE (25000), STEP_AT (30), STEP_SECS (30) and
# TOTAL_SECS (150: 60 s after the step, the time the pool has to come back
# near the base demand) shape the load: a base loadgen runs TOTAL_SECS, a
# second one adds STEP_RATE from STEP_AT for STEP_SECS; both open loop
# (MAX_INFLIGHT_PER_CLIENT, default 8 here, above REQUEST_TIMEOUT / 2 s).
#
# Environment: BROKER_KIND=mosquitto|embedded|URL (default mosquitto, the
# embedded broker when mosquitto is absent; a URL such as tcp://10.0.0.5:1883
# runs only the loadgen, against your broker and the service answering on it;
# autoscale and workercpu need this script's worker). OUT=dir (default
# results/SUITE-YYYYMMDDTHHMMSSZ under the repository). INTERVAL_MS (default
# 2000) sets each step's interval: virtual clients = rate × INTERVAL_MS / 1000.
# Any loadgen-v2/worker-v2 variable (e.g. CONNECTIONS, MODE) passes through.
# Before each step the script waits (up to QUIET_WAIT=60 s) until other work
# keeps less than QUIET_BUSY=0.25 of the cores busy.
# BENCH_NICE=-10 runs the broker, worker, loadgen and echo at that niceness
# (negative: root): on a machine shared with other work it keeps their CPU
# bursts out of the measured tails (manifest.json records the load average).
# Loopback only unless BROKER_KIND is a URL; every run is bounded by DURATION
# and stops by itself. Exit status: 0 done, 1 a step could not run, 2 usage.
set -euo pipefail
usage() { sed -n '2,/^set -euo/p' "$SELF" | sed -e '$d' -e 's/^# \{0,1\}//'; }
SELF=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")
ORIG_PWD=$PWD
cd "$(dirname "$0")/.."
BIN=${BIN:-bin}

SUITE=${1:-quick}
die_usage() { printf '%s\n\n' "$1" >&2; usage >&2; exit 2; }
is_uint() { case $1 in '' | *[!0-9]*) return 1 ;; esac; }
case $SUITE in
  -h | --help | help) usage; exit 0 ;;
  quick | baseline | knee | ceiling | floor | sweep | clients | mem1m | autoscale | all) ;;
  fleet)
    if [ -n "${2:-}" ] && { ! is_uint "$2" || [ "$2" -eq 0 ] || [ "$2" -gt 1000 ]; }; then die_usage "fleet: N=$2 is not a number of loadgens (1..1000)"; fi
    if [ -n "${3:-}" ] && { ! is_uint "$3" || [ "$3" -eq 0 ]; }; then die_usage "fleet: R=$3 is not a rate in req/s"; fi
    if [ -n "${FLEET_CLIENTS:-}" ] && { ! is_uint "$FLEET_CLIENTS" || [ "$FLEET_CLIENTS" -eq 0 ]; }; then die_usage "FLEET_CLIENTS=$FLEET_CLIENTS is not a number of virtual clients"; fi
    ;;
  rate | workercpu)
    if ! is_uint "${2:-}" || [ "$2" -eq 0 ]; then die_usage "$SUITE needs a rate in req/s: scripts/benchmark.sh $SUITE R [S]"; fi
    [ -z "${3:-}" ] || is_uint "$3" || die_usage "$SUITE: S=$3 is not a number of seconds"
    ;;
  *) die_usage "unknown suite $SUITE" ;;
esac
if [ -n "${SECS:-}" ] && { ! is_uint "$SECS" || [ "$SECS" -eq 0 ]; }; then die_usage "SECS=$SECS is not a positive number of seconds"; fi
if [ -n "${BENCH_NICE:-}" ] && ! is_uint "${BENCH_NICE#-}"; then die_usage "BENCH_NICE=$BENCH_NICE is not a niceness (-20..19)"; fi

MOSQ=$(command -v mosquitto || ls /usr/sbin/mosquitto 2>/dev/null || true)
KIND=${BROKER_KIND:-mosquitto}
BROKER_URL=""
case $KIND in
  mosquitto) [ -n "$MOSQ" ] || { echo "mosquitto absent: using the embedded broker (apt-get install mosquitto for Mosquitto)" >&2; KIND=embedded; } ;;
  embedded) ;;
  tcp://?* | mqtt://?* | ssl://?* | tls://?* | mqtts://?*)
    BROKER_URL=$KIND; KIND=url
    case $SUITE in autoscale | workercpu) die_usage "$SUITE watches the worker this script starts: it needs BROKER_KIND=mosquitto or embedded, not a URL" ;; esac
    ;;
  *) die_usage "BROKER_KIND=$KIND: want mosquitto, embedded or a broker URL (tcp://host:port, ssl://host:port)" ;;
esac

BINS=(loadgen-v2 worker-v2 rr-local rr-chart rr-echo)
case $SUITE in knee | all) BINS+=(rr-knee) ;; esac
for b in "${BINS[@]}"; do
  [ -x "$BIN/$b" ] || { echo "$BIN/$b is missing: build first (make build)" >&2; exit 1; }
done
for t in jq curl python3; do command -v "$t" >/dev/null || { echo "$t is required (apt-get install $t)" >&2; exit 1; }; done

# The results folder; the suite runs in a child whose output is also kept in
# console.txt.
if [ -z "${BENCH_CHILD:-}" ]; then
  OUT=${OUT:-$PWD/results/$SUITE-$(date -u +%Y%m%dT%H%M%SZ)}
  case $OUT in /*) ;; *) OUT=$ORIG_PWD/$OUT ;; esac # relative to where the script was started
  mkdir -p "$OUT"
  OUT=$(cd "$OUT" && pwd)
  export OUT BENCH_CHILD=1
  set +e
  "$SELF" "$@" 2>&1 | tee -i "$OUT/console.txt"
  rc=${PIPESTATUS[0]}
  exit "$rc"
fi
mkdir -p "$OUT/logs"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
trap 'echo "interrupted: partial results in $OUT" >&2; exit 130' INT TERM

# BENCH_NICE: the niceness of the broker, worker, loadgen and echo (nice execs,
# so $! stays the program's pid).
NICE=(env)
if [ -n "${BENCH_NICE:-}" ]; then NICE=(nice -n "$BENCH_NICE"); fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# STEP_TAG names the logs of the broker and worker of one step (logs/TAG.*).
STEP_TAG=${STEP_TAG:-$SUITE}
start_broker() {
  local port; port=$(free_port)
  if [ "$1" = mosquitto ]; then
    cat >"$OUT/mosquitto.conf" <<CONF
listener $port 127.0.0.1
allow_anonymous true
set_tcp_nodelay true
max_queued_messages 1000000
max_inflight_messages 0
persistence false
CONF
    "${NICE[@]}" "$MOSQ" -c "$OUT/mosquitto.conf" >"$OUT/logs/$STEP_TAG.mosquitto.log" 2>&1 &
  else
    BROKER_ADDR=127.0.0.1:$port "${NICE[@]}" "$BIN/rr-local" broker >"$OUT/logs/$STEP_TAG.broker.log" 2>&1 &
  fi
  BROKER_PID=$!; PIDS+=("$BROKER_PID")
  for _ in $(seq 100); do (echo >/dev/tcp/127.0.0.1/"$port") 2>/dev/null && break; sleep 0.05; done
  BROKER_URL=tcp://127.0.0.1:$port
}
stop_pid() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

WORKER_ENV=() # extra VAR=value settings of the worker only
start_worker() {
  WORKER_HTTP=127.0.0.1:$(free_port)
  # env execs the worker: $! is the worker's own pid (workercpu reads its /proc).
  MQTT_BROKER=$BROKER_URL HTTP_ADDR=$WORKER_HTTP "${NICE[@]}" env "${WORKER_ENV[@]}" "$BIN/worker-v2" >"$OUT/logs/$STEP_TAG.worker.log" 2>&1 &
  WORKER_PID=$!; PIDS+=("$WORKER_PID")
  for _ in $(seq 200); do curl -fsS "http://$WORKER_HTTP/ready" >/dev/null 2>&1 && return 0; sleep 0.05; done
  echo "worker not ready (see $OUT/logs/$STEP_TAG.worker.log)" >&2; return 1
}

# sample_worker FILE: the worker's /stats every second as CSV (the
# workers-queue.svg chart) until killed; time counts from the worker's start.
sample_worker() {
  local t0=$EPOCHREALTIME t=0 now line w nd q o p d prev_p="" prev_t=""
  echo 'time (s),workers/workers,workers/need_workers,queue depth (messages)/queue_depth,oldest queued (ms)/queue_oldest_ms,processed (req/s)/processed_rps,dropped when full (total)/dropped_full' >"$1"
  while :; do
    now=$EPOCHREALTIME
    if line=$(curl -fsS --max-time 2 "http://$WORKER_HTTP/stats" 2>/dev/null | jq -r '[.workers, .need_workers, .queue_depth,
        (.queue_oldest_seconds | if . == null then null else . * 1000 | round end), .processed, .dropped_full]
        | map(if . == null then "" else tostring end) | join(",")'); then
      IFS=, read -r w nd q o p d <<<"$line"
      awk -v t="$t" -v w="$w" -v nd="$nd" -v q="$q" -v o="$o" -v p="$p" -v pp="$prev_p" -v n="$now" -v pt="$prev_t" -v d="$d" \
        'BEGIN { r = (pp == "" || p == "") ? "" : sprintf("%.0f", (p - pp) / (n - pt)); printf "%d,%s,%s,%s,%s,%s,%s\n", t, w, nd, q, o, r, d }' >>"$1"
      prev_p=$p; prev_t=$now
    fi
    t=$((t + 1))
    now=$EPOCHREALTIME
    sleep "$(awk -v a="$t0" -v n="$now" -v t="$t" 'BEGIN { d = a + t - n; printf "%.3f", (d > 0 ? d : 0) }')"
  done
}

# warmup_for SECS: the WARMUP of a run of SECS seconds.
warmup_for() {
  if [ -n "${WARMUP:-}" ]; then echo "$WARMUP"; elif [ "$1" -ge 10 ]; then echo 2s; elif [ "$1" -ge 3 ]; then echo 1s; else echo 0s; fi
}
SLO_ENV=("SLO_P99_MS=${SLO_P99_MS:-50}" "SLO_MATCH_RATE=${SLO_MATCH_RATE:-0.999}" "SLO_SUCCESS_RATE=${SLO_SUCCESS_RATE:-${SLO_MATCH_RATE:-0.999}}")

# loadgen_bg NAME CLIENTS INTERVAL_MS SECONDS [VAR=value...]: starts one
# loadgen run in the background (LG_PID); summary NAME prints its result line.
loadgen_bg() {
  local name=$1 clients=$2 interval=$3 secs=$4; shift 4
  VIRTUAL_CLIENTS=$clients INTERVAL_MS=$interval DURATION=${secs}s BROKER=$BROKER_URL \
    METRICS_ADDR=127.0.0.1:0 REPORT_FILE="$OUT/$name.json" CPU_PROFILE=${CPU_PROFILE:-} PROGRESS_INTERVAL=${PROGRESS_INTERVAL:-5s} \
    "${NICE[@]}" env "$@" "$BIN/loadgen-v2" >"$OUT/$name.txt" 2>"$OUT/logs/$name.loadgen.log" &
  LG_PID=$!; PIDS+=("$LG_PID")
}

CSV_HEADER=step,broker,kind,virtual_clients,interval_ms,target_rps,achieved_rps,rate_ratio,success_rate,match_rate,p50_ms,p90_ms,p99_ms,p999_ms,max_ms,slo_passed,loadgen_cpu_us_per_request,loadgen_max_rss_mb,cpu_steal,report,schedule_lag_p50_ms,schedule_lag_p99_ms,broker_network_p50_ms,broker_network_p99_ms
# record NAME: adds step NAME (its report NAME.json) to steps.txt and summary.csv.
record() {
  [ -s "$OUT/summary.csv" ] || echo "$CSV_HEADER" >"$OUT/summary.csv"
  # The broker of the step (mosquitto, embedded or the URL), for the charts.
  jq --arg b "$(if [ "$KIND" = url ]; then echo "$BROKER_URL"; else echo "$KIND"; fi)" '.bench.broker = $b' "$OUT/$1.json" >"$OUT/$1.json.tmp" &&
    mv "$OUT/$1.json.tmp" "$OUT/$1.json"
  jq -r --arg n "$1" --arg k "$KIND" --arg st "${STEP_STEAL:-}" '[$n, $k, (.kind // "loadgen"), .virtual_clients, (.interval_s | if . == null then null else . * 1000 | round end),
    .target_rps, .throughput_rps, .rate_ratio, .success_rate, .match_rate, .latency_ms.p50, .latency_ms.p90, .latency_ms.p99,
    .latency_ms.p999, .latency_ms.max, .slo.passed, .process.sending_cpu_us_per_request, .process.max_rss_mb,
    (if $st == "" then null else ($st | tonumber) end), ($n + ".json"),
    .schedule_lag_ms.p50, .schedule_lag_ms.p99, .broker_network_ms.p50, .broker_network_ms.p99] | @csv' \
    "$OUT/$1.json" >>"$OUT/summary.csv"
  jq -r --arg n "$1" '"\($n) \(.kind // "loadgen")"' "$OUT/$1.json" >>"$OUT/steps.txt"
}
summary() {
  if ! jq -e . "$OUT/$1.json" >/dev/null 2>&1; then
    printf '%s\t%s\tno report: see %s\n' "$1" "$KIND" "$OUT/logs/$1.loadgen.log"
    return 0
  fi
  record "$1"
  jq -r --arg n "$1" --arg k "$KIND" '[$n, $k, .target_rps, .throughput_rps, .rate_ratio, .match_rate, .latency_ms.p50, .latency_ms.p99, .latency_ms.max, .process.sending_cpu_us_per_request, .process.max_rss_mb] |
    "\(.[0])\t\(.[1])\ttarget \(.[2]|floor)/s\tachieved \(.[3]|floor)/s\tratio \(.[4]*10000|round/10000)\tmatch \(.[5]*1000000|floor/1000000)\tp50 \(.[6]) ms\tp99 \(.[7]) ms\tmax \(.[8]) ms\tloadgen \(if .[9] == null then "–" else .[9]*10|round/10 end) µs/req\tRSS \(if .[10] == null then "–" else .[10]|floor end) MB"' "$OUT/$1.json" |
    tr -d '\n'
  jq -r --arg st "${STEP_STEAL:-}" '(if $st == "" then "" else "\tsteal \($st | tonumber * 100 | round)%" end)
    + (if (.slo.p99_ms // 0) > 0 or (.slo.match_rate // 0) > 0 then "\tSLO " + (if .slo.passed then "passed" else "FAILED (" + (.slo.failures | join("; ")) + ")" end) else "" end)' "$OUT/$1.json"
  STEP_STEAL=""
}

# run NAME CLIENTS INTERVAL_MS SECONDS [VAR=value...]: one loadgen run; prints a result line.
run() {
  local s0
  s0=$(head -1 /proc/stat 2>/dev/null || true)
  loadgen_bg "$@"
  wait "$LG_PID" || true
  STEP_STEAL=$(steal_between "$s0" "$(head -1 /proc/stat 2>/dev/null || true)")
  summary "$1"
}

# steal_between STAT0 STAT1: the share of CPU time the hypervisor took for
# other guests ("steal", /proc/stat) between two first lines of /proc/stat;
# empty when unknown. Steal is invisible to the load average and slows
# every process of this machine alike.
steal_between() {
  [ -n "$1" ] && [ -n "$2" ] || return 0
  awk -v a="$1" -v b="$2" 'BEGIN { split(a, x); split(b, y); t = 0
    for (i = 2; i <= 9; i++) t += y[i] - x[i]
    if (t > 0) printf "%.3f", (y[9] - x[9]) / t }'
}

# stat_now: the worker's /stats as "workers queue_depth processed dropped_full
# queue_oldest_ms need_workers".
stat_now() { curl -fsS --max-time 2 "http://$WORKER_HTTP/stats" | jq -r '"\(.workers) \(.queue_depth) \(.processed) \(.dropped_full) \(.queue_oldest_seconds * 1000 | round) \(.need_workers)"'; }

# autoscale: a base loadgen at BASE_RATE for TOTAL_SECS, a second one adding
# STEP_RATE from STEP_AT for STEP_SECS; the worker's state every second.
autoscale() {
  local base=${BASE_RATE:-5000} step=${STEP_RATE:-25000} at=${STEP_AT:-30} len=${STEP_SECS:-30} total=${TOTAL_SECS:-150}
  local t0 t=0 now prev_t prev_p w q p d o nd stepped=0
  echo "autoscale: base $base req/s for $total s, +$step req/s from t=$at s for $len s; worker ${WORKER_ENV[*]}" >&2
  t0=$EPOCHREALTIME
  # Open loop: with MAX_INFLIGHT_PER_CLIENT=1 a client whose request was
  # dropped skips its sends until REQUEST_TIMEOUT, which lowers the offered load.
  local inflight=MAX_INFLIGHT_PER_CLIENT=${MAX_INFLIGHT_PER_CLIENT:-8}
  loadgen_bg autoscale-base $((base * 2)) 2000 "$total" INSTANCE_ID=autoscale-base CLIENT_ID_OFFSET=0 "$inflight"
  local base_pid=$LG_PID step_pid=""
  prev_t=$t0; prev_p=$(stat_now | cut -d' ' -f3)
  # until the base loadgen has exited (it drains after TOTAL_SECS)
  while kill -0 "$base_pid" 2>/dev/null; do
    t=$((t + 1))
    now=$EPOCHREALTIME
    sleep "$(awk -v a="$t0" -v n="$now" -v t="$t" 'BEGIN { d = a + t - n; printf "%.3f", (d > 0 ? d : 0) }')"
    if [ "$stepped" = 0 ] && [ "$t" -ge "$at" ]; then
      loadgen_bg autoscale-step $((step * 2)) 2000 "$len" INSTANCE_ID=autoscale-step CLIENT_ID_OFFSET=$((base * 2)) "$inflight"
      step_pid=$LG_PID; stepped=1
    fi
    now=$EPOCHREALTIME
    read -r w q p d o nd < <(stat_now || echo "? ? $prev_p ? ? ?")
    awk -v t="$t" -v w="$w" -v q="$q" -v p="$p" -v pp="$prev_p" -v n="$now" -v pt="$prev_t" -v d="$d" -v o="$o" -v need="$nd" \
      'BEGIN { printf "t=%ds workers=%s need=%s queue=%s oldest_ms=%s processed_rps=%.0f dropped_full=%s\n", t, w, need, q, o, (p - pp) / (n - pt), d }'
    prev_t=$now; prev_p=$p
  done
  wait "$base_pid" || true
  [ -n "$step_pid" ] && { wait "$step_pid" || true; }
  summary autoscale-base
  [ -n "$step_pid" ] && summary autoscale-step
  echo "scaling events (the last 50; t from the start of the base loadgen):"
  curl -fsS --max-time 2 "http://$WORKER_HTTP/stats" | jq -r --argjson t0 "$t0" '
    def epoch: capture("^(?<s>[0-9-]+T[0-9:]+)(?<f>[.][0-9]+)?(?<z>Z|[+-][0-9][0-9]:[0-9][0-9])$")
      | ((.s + "Z") | fromdateiso8601) + (("0" + .f) | tonumber)
        - (if .z == "Z" then 0 else ((.z[1:3] | tonumber) * 3600 + (.z[4:6] | tonumber) * 60) * (if .z[0:1] == "-" then -1 else 1 end) end);
    .scaling_events[] | "t=\((.time | epoch) - $t0 | . * 10 | round / 10)s \(.from) -> \(.to)  \(.trigger): \(.reason)"'
  curl -fsS --max-time 2 "http://$WORKER_HTTP/stats" | jq -r '"worker: received \(.received) processed \(.processed) dropped_full \(.dropped_full) reply_failed \(.reply_failed) abandoned \(.abandoned)"'
}

# cpu_ticks PID: utime + stime of PID in clock ticks (fields 14 and 15 of
# /proc/PID/stat, counted after the ")" that ends the command name).
cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'; }

# workercpu R S: the CPU per round trip at R req/s of the worker (per
# processed request), the broker (per request processed by the worker: one
# request in and one response out) and the loadgen (its report).
workercpu() {
  local r=$1 s=$2 name="workercpu-$1" c0 c1 b0 b1 p0 p1
  c0=$(cpu_ticks "$WORKER_PID"); b0=$(cpu_ticks "$BROKER_PID"); p0=$(stat_now | cut -d' ' -f3)
  run "$name" $((r * 2)) 2000 "$s" >/dev/null
  c1=$(cpu_ticks "$WORKER_PID"); b1=$(cpu_ticks "$BROKER_PID"); p1=$(stat_now | cut -d' ' -f3)
  manifest_set workercpu "$(jq --argjson tck "$(getconf CLK_TCK)" --argjson c "$((c1 - c0))" --argjson b "$((b1 - b0))" --argjson p "$((p1 - p0))" --arg k "$KIND" \
    '{rate_rps: .target_rps, achieved_rps: .throughput_rps, match_rate, worker_processed: $p, broker: $k,
      worker_cpu_s: ($c / $tck), broker_cpu_s: ($b / $tck),
      worker_cpu_us_per_request: (if $p > 0 then $c / $tck * 1e6 / $p else null end),
      broker_cpu_us_per_round_trip: (if $p > 0 then $b / $tck * 1e6 / $p else null end),
      loadgen_cpu_us_per_request: .process.sending_cpu_us_per_request}' "$OUT/$name.json")"
  jq -r --arg n "$name" '.results.workercpu | "\($n)\t\(.broker)\ttarget \(.rate_rps|floor)/s\tachieved \(.achieved_rps|floor)/s\tmatch \(.match_rate*1000000|floor/1000000)\tworker processed \(.worker_processed)\tCPU per round trip: worker \(.worker_cpu_us_per_request // 0 | . * 10 | round / 10) µs, broker \(.broker_cpu_us_per_round_trip // 0 | . * 10 | round / 10) µs, loadgen \(.loadgen_cpu_us_per_request * 10 | round / 10) µs (sending)"' "$OUT/manifest.json"
}

# respondercpu R S: workercpu's run answered by the plain paho echo responder
# (rr-echo respond: one paho client per connection, the handler publishes the
# response; CONNECTIONS as the worker's, default 10) instead of worker-v2.
respondercpu() {
  local r=$1 s=$2 name="respondercpu-$1" c0 c1 b0 b1 pid out="$OUT/logs/respondercpu-$1.responder.json"
  BROKER=$BROKER_URL CONNECTIONS=${CONNECTIONS:-10} "${NICE[@]}" "$BIN/rr-echo" respond >"$out" 2>"$OUT/logs/$STEP_TAG.responder.log" &
  pid=$!; PIDS+=("$pid")
  for _ in $(seq 200); do grep -q 'responder ready' "$OUT/logs/$STEP_TAG.responder.log" 2>/dev/null && break; sleep 0.05; done
  grep -q 'responder ready' "$OUT/logs/$STEP_TAG.responder.log" || { echo "responder not ready (see $OUT/logs/$STEP_TAG.responder.log)" >&2; return 1; }
  c0=$(cpu_ticks "$pid"); b0=$(cpu_ticks "$BROKER_PID")
  run "$name" $((r * 2)) 2000 "$s" >/dev/null
  c1=$(cpu_ticks "$pid"); b1=$(cpu_ticks "$BROKER_PID")
  stop_pid "$pid"
  manifest_set respondercpu "$(jq --argjson tck "$(getconf CLK_TCK)" --argjson c "$((c1 - c0))" --argjson b "$((b1 - b0))" --slurpfile a "$out" --arg k "$KIND" \
    '{rate_rps: .target_rps, achieved_rps: .throughput_rps, match_rate, responder_answered: $a[0].answered, broker: $k,
      responder_cpu_s: ($c / $tck), broker_cpu_s: ($b / $tck),
      responder_cpu_us_per_request: (if $a[0].answered > 0 then $c / $tck * 1e6 / $a[0].answered else null end),
      broker_cpu_us_per_round_trip: (if $a[0].answered > 0 then $b / $tck * 1e6 / $a[0].answered else null end),
      loadgen_cpu_us_per_request: .process.sending_cpu_us_per_request}' "$OUT/$name.json")"
  jq -r --arg n "$name" '.results.respondercpu | "\($n)\t\(.broker)\ttarget \(.rate_rps|floor)/s\tachieved \(.achieved_rps|floor)/s\tmatch \(.match_rate*1000000|floor/1000000)\tresponder answered \(.responder_answered)\tCPU per round trip: paho responder \(.responder_cpu_us_per_request // 0 | . * 10 | round / 10) µs, broker \(.broker_cpu_us_per_round_trip // 0 | . * 10 | round / 10) µs, loadgen \(.loadgen_cpu_us_per_request * 10 | round / 10) µs (sending)"' "$OUT/manifest.json"
  jq -r '.results | if .workercpu.worker_cpu_us_per_request and .respondercpu.responder_cpu_us_per_request then
    "worker-v2 / plain paho responder CPU per round trip: \(.workercpu.worker_cpu_us_per_request / .respondercpu.responder_cpu_us_per_request * 100 | round / 100)×" else empty end' "$OUT/manifest.json"
}

# cpu_busy: the share (0..1) of all cores busy over the next second, from
# /proc/stat (user + nice + system + irq + softirq + steal over the total).
cpu_busy() {
  local a b
  a=$(head -1 /proc/stat); sleep 1; b=$(head -1 /proc/stat)
  awk -v a="$a" -v b="$b" 'BEGIN { split(a, x); split(b, y); t = 0; idle = 0
    for (i = 2; i <= 9; i++) t += y[i] - x[i]
    idle = (y[5] - x[5]) + (y[6] - x[6])
    printf "%.2f", (t > 0 ? 1 - idle / t : 0) }'
}

# wait_quiet: before a step (nothing of ours runs), wait up to QUIET_WAIT
# seconds (default 60; 0 = never) until other work keeps less than QUIET_BUSY
# (default 0.25) of the cores busy, so a burst of someone else's work does
# not land in a step. Prints what it waited for.
wait_quiet() {
  local limit=${QUIET_WAIT:-60} max=${QUIET_BUSY:-0.25} busy t0=$SECONDS said=""
  [ "$limit" != 0 ] && [ -r /proc/stat ] || return 0
  while busy=$(cpu_busy) && awk -v b="$busy" -v m="$max" 'BEGIN { exit !(b > m) }'; do
    if [ $((SECONDS - t0)) -ge "$limit" ]; then
      echo "  (other work still keeps $(awk -v b="$busy" 'BEGIN { printf "%d", b * 100 }')% of the CPU busy after ${limit} s: going on)" >&2
      return 0
    fi
    if [ -z "$said" ]; then
      echo "  (other work keeps $(awk -v b="$busy" 'BEGIN { printf "%d", b * 100 }')% of the CPU busy: waiting up to ${limit} s for it to pass)" >&2
      said=1
    fi
  done
}

# with_stack KIND cmd...: broker + worker around a command (with
# BROKER_KIND=URL only the command: your broker and service). autoscale also
# samples the worker every second (worker-timeline.csv).
with_stack() {
  local kind=$1 sampler=""; shift
  wait_quiet
  if [ "$kind" = url ]; then "$@"; return; fi
  KIND=$kind start_broker "$kind"; KIND=$kind
  start_worker
  if [ "$SUITE" = autoscale ]; then
    sample_worker "$OUT/worker-timeline.csv" &
    sampler=$!; PIDS+=("$sampler")
  fi
  "$@"
  if [ -n "$sampler" ]; then stop_pid "$sampler"; fi
  stop_pid "$WORKER_PID"; stop_pid "$BROKER_PID"
}

# with_broker KIND cmd...: only the broker around a command (none for a URL).
with_broker() {
  local kind=$1; shift
  wait_quiet
  if [ "$kind" = url ]; then "$@"; return; fi
  KIND=$kind start_broker "$kind"; KIND=$kind
  "$@"
  stop_pid "$BROKER_PID"
}

# echo_run NAME SECS: bin/rr-echo against BROKER_URL; prints its result line.
echo_run() {
  local name=$1 secs=$2 s0
  s0=$(head -1 /proc/stat 2>/dev/null || true)
  BROKER=$BROKER_URL DURATION=${secs}s WARMUP=$(warmup_for "$secs") REPORT_FILE="$OUT/$name.json" \
    "${NICE[@]}" "$BIN/rr-echo" >"$OUT/$name.txt" 2>"$OUT/logs/$name.echo.log" || true
  STEP_STEAL=$(steal_between "$s0" "$(head -1 /proc/stat 2>/dev/null || true)")
  if ! jq -e . "$OUT/$name.json" >/dev/null 2>&1; then
    printf '%s\t%s\tno result: see %s\n' "$name" "$KIND" "$OUT/logs/$name.echo.log"
    return 0
  fi
  record "$name"
  STEP_STEAL=""
  jq -r --arg n "$name" --arg k "$KIND" '"\($n)\t\($k)\tround trips \(.throughput_rps|floor)/s\tp50 \(.latency_ms.p50) ms\tp99 \(.latency_ms.p99) ms\tmax \(.latency_ms.max) ms\tlost \(.lost)\t(rr-echo: \(.config.requesters) connections × \(.config.outstanding) outstanding, \(.config.responders) responders, QoS \(.config.qos), \(.config.payload_bytes) B)"' "$OUT/$name.json"
}

# manifest_settings JSON: sets .settings in manifest.json: what the suite
# runs with (rate, clients, interval, duration, warm-up, SLO), as it runs.
manifest_settings() {
  jq --argjson v "$1" '.settings = $v' "$OUT/manifest.json" >"$OUT/manifest.json.tmp" && mv "$OUT/manifest.json.tmp" "$OUT/manifest.json"
}

# secs_of D: a duration such as 2s, 500ms or 1m in seconds ("" if not one).
secs_of() {
  case $1 in
    *ms) awk -v v="${1%ms}" 'BEGIN { print v / 1000 }' ;;
    *m) awk -v v="${1%m}" 'BEGIN { print v * 60 }' ;;
    *s) echo "${1%s}" ;;
    *) echo "" ;;
  esac
}

# manifest_set KEY JSON: sets .results[KEY] in manifest.json.
manifest_set() {
  jq --arg k "$1" --argjson v "$2" '.results[$k] = $v' "$OUT/manifest.json" >"$OUT/manifest.json.tmp" && mv "$OUT/manifest.json.tmp" "$OUT/manifest.json"
}

# write_manifest ARGS...: the exact configuration and the machine.
write_manifest() {
  local names=() env_args=() n mochi mosq_v go_tc go_bin
  # Every variable of the binaries (their -h tables) and of this script that is set.
  mapfile -t names < <({ "$BIN/loadgen-v2" -h; "$BIN/worker-v2" -h; "$BIN/rr-echo" -h; } 2>/dev/null | awk '/^[A-Z][A-Z0-9_]+ / { print $1 }' | sort -u)
  names+=(BROKER_KIND BENCH_NICE QUIET_WAIT QUIET_BUSY SECS WARMUP INTERVAL_MS KNEE_START KNEE_MAX KNEE_PRECISION KNEE_CONFIRM KNEE_TRIES KNEE_MAX_STEAL KNEE_HALF CEILING BASE_RATE STEP_RATE STEP_AT STEP_SECS TOTAL_SECS GOMAXPROCS GOMEMLIMIT)
  for n in "${names[@]}"; do
    case $n in *PASSWORD* | *KEY_FILE*) continue ;; esac
    if [ -n "${!n+x}" ]; then env_args+=(--arg "$n" "${!n}"); fi
  done
  mosq_v=""
  if [ -n "$MOSQ" ]; then mosq_v=$("$MOSQ" -h 2>/dev/null | awk 'NR == 1 { print $3 }' || true); fi
  mochi=$(go version -m "$BIN/rr-local" 2>/dev/null | awk '$2 == "github.com/mochi-mqtt/server/v2" { print $3 }' || true)
  go_tc=$(go version 2>/dev/null || true)
  go_bin=$(go version "$BIN/loadgen-v2" 2>/dev/null | awk '{ print $2 }' || true)
  jq -n --args '$ARGS.positional' "$@" >"$OUT/manifest.args.tmp"
  jq -n --arg suite "$SUITE" --slurpfile args "$OUT/manifest.args.tmp" \
    --arg date "$(date -u +%Y-%m-%dT%H:%M:%SZ)" --arg kind "$KIND" --arg url "$BROKER_URL" \
    --arg commit "$(git rev-parse HEAD 2>/dev/null || echo unknown)" \
    --argjson dirty "$(git status --porcelain --untracked-files=no 2>/dev/null | wc -l)" \
    --arg go_tc "$go_tc" --arg go_bin "$go_bin" --arg mosq "$mosq_v" --arg mochi "$mochi" \
    --arg cpu "$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null)" \
    --argjson cores "$(nproc)" \
    --argjson mem "$(awk '/^MemTotal:/ { printf "%d", $2 / 1024 }' /proc/meminfo 2>/dev/null || echo null)" \
    --arg kernel "$(uname -sr)" --arg host "$(hostname)" --arg load "$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null)" \
    --argjson env "$(jq -n '$ARGS.named' ${env_args[@]+"${env_args[@]}"})" \
    '{suite: $suite, command: (["scripts/benchmark.sh"] + $args[0]), started_utc: $date,
      broker: {kind: $kind, url: (if $kind == "url" then $url else null end),
               mosquitto_version: (if $mosq == "" then null else $mosq end),
               embedded: (if $mochi == "" then null else "mochi-mqtt/server " + $mochi end)},
      git: {commit: $commit, uncommitted_files: $dirty},
      go: {toolchain: $go_tc, binaries_built_with: $go_bin},
      machine: {cpu_model: $cpu, cores: $cores, memory_mb: $mem, kernel: $kernel, hostname: $host, load_average_at_start: $load},
      environment: $env,
      settings: null,
      note: "settings: what the suite ran with (set by the suite); each step report (STEP.json) carries the loadgen configuration of that step under .config",
      results: {}}' >"$OUT/manifest.json"
  rm -f "$OUT/manifest.args.tmp"
}

# charts: the SVG charts of the steps in steps.txt.
charts() {
  local all=() lg=() n k x=target_rps file=latency-vs-rate.svg what="offered rate"
  [ -s "$OUT/steps.txt" ] || return 0
  while read -r n k; do
    # knee: a rate run more than once is drawn with its last run (the one that decided it)
    case $n in
      knee-*-try*) if [ -f "$OUT/${n%-try*}-try$((${n##*-try} + 1)).json" ]; then continue; fi ;;
      knee-[0-9]*) if [ -f "$OUT/$n-try2.json" ]; then continue; fi ;;
    esac
    all+=("$OUT/$n.json")
    [ "$k" = loadgen ] && lg+=("$OUT/$n.json")
  done <"$OUT/steps.txt"
  # (rr-chart adds the brokers, rates and durations of the reports to each title)
  "$BIN/rr-chart" spectrum -o "$OUT/spectrum.svg" -title "$SUITE: percentile spectrum of each step" "${all[@]}" ||
    echo "spectrum chart failed" >&2
  if [ "$SUITE" = clients ]; then x=virtual_clients file=latency-vs-clients.svg what="virtual clients"; fi
  # (autoscale's two loadgens and a fleet's run side by side: no curve)
  if [ "$SUITE" != autoscale ] && [ "$SUITE" != fleet ] && [ "${#lg[@]}" -gt 0 ] && [ "$(jq -s --arg x "$x" 'map(.[$x]) | unique | length' "${lg[@]}")" -ge 2 ]; then
    "$BIN/rr-chart" rate -o "$OUT/$file" -x "$x" -slo-p99 "${SLO_P99_MS:-50}" -knee "${KNEE_RPS:-0}" \
      -title "$SUITE: round-trip latency against $what" "${lg[@]}" || echo "rate chart failed" >&2
  fi
  if [ -s "$OUT/worker-timeline.csv" ]; then
    "$BIN/rr-chart" timeline -o "$OUT/workers-queue.svg" -title "$SUITE: worker pool and queue, every second" "$OUT/worker-timeline.csv" ${lg[@]+"${lg[@]}"} ||
      echo "timeline chart failed" >&2
  fi
}

# finish: charts, the end of the manifest, and where everything is.
# broker_capabilities is what the broker announced to the first loadgen step
# (its report's broker: protocol and, on MQTT 5, the CONNACK's limits).
finish() {
  local conf="" f steal first caps=null
  charts
  if [ -f "$OUT/mosquitto.conf" ]; then conf=$(cat "$OUT/mosquitto.conf"); fi
  steal=$(steal_between "$SUITE_STAT0" "$(head -1 /proc/stat 2>/dev/null || true)")
  first=$(awk '$2 == "loadgen" { print $1; exit }' "$OUT/steps.txt" 2>/dev/null || true)
  if [ -n "$first" ] && [ -f "$OUT/$first.json" ]; then caps=$(jq -c '.broker // null' "$OUT/$first.json" 2>/dev/null || echo null); fi
  jq --arg d "$(date -u +%Y-%m-%dT%H:%M:%SZ)" --arg load "$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null)" --arg conf "$conf" --arg steal "$steal" \
    --argjson caps "$caps" \
    '.finished_utc = $d | .machine.load_average_at_end = $load | .broker_capabilities = $caps
     | .machine.cpu_steal_share = (if $steal == "" then null else ($steal | tonumber) end)
     | if $conf != "" then .broker.mosquitto_config = ($conf | split("\n")) else . end' "$OUT/manifest.json" >"$OUT/manifest.json.tmp" &&
    mv "$OUT/manifest.json.tmp" "$OUT/manifest.json"
  echo "results in $OUT:"
  for f in "$OUT"/summary.csv "$OUT"/manifest.json "$OUT"/console.txt "$OUT"/*.svg; do
    if [ -f "$f" ]; then echo "  ${f##*/}"; fi
  done
}

# fleet N R SECS: N loadgens as one fleet (FLEET_COORDINATOR=external) and
# the coordinator, 'loadgen-v2 fleet', which writes the per-instance and
# merged reports to fleet/; the instances' reports are steps fleet-I, the
# merged one fleet-merged. FLEET_RC is the coordinator's exit status.
fleet() {
  local n=$1 r=$2 secs=$3 clients=${FLEET_CLIENTS:-100000} iv id i rc=0 pids=()
  iv=$(((n * clients * 1000 + r / 2) / r))
  id=bench-$(date -u +%Y%m%dT%H%M%SZ)
  echo "fleet $id: $n loadgens × $clients virtual clients every $iv ms ($r req/s in all) for $secs s, warm-up $(warmup_for "$secs")" >&2
  BROKER=$BROKER_URL FLEET_ID=$id FLEET_SIZE=$n FLEET_RESULTS="$OUT/fleet" FLEET_TIMEOUT=${FLEET_TIMEOUT:-2m} \
    "$BIN/loadgen-v2" fleet >"$OUT/fleet.txt" 2>"$OUT/logs/fleet.coordinator.log" &
  local coord=$!; PIDS+=("$coord")
  for ((i = 0; i < n; i++)); do
    loadgen_bg "fleet-$i" "$clients" "$iv" "$secs" "FLEET_ID=$id" "FLEET_SIZE=$n" "FLEET_INDEX=$i" FLEET_COORDINATOR=external \
      "INSTANCE_ID=$id-$i" "WARMUP=$(warmup_for "$secs")" PROGRESS_INTERVAL=0 "${SLO_ENV[@]}"
    pids+=("$LG_PID")
  done
  wait "$coord" || rc=$?
  for i in "${pids[@]}"; do wait "$i" || true; done
  for ((i = 0; i < n; i++)); do
    if jq -e . "$OUT/fleet-$i.json" >/dev/null 2>&1; then record "fleet-$i"; fi
  done
  if [ -f "$OUT/fleet/merged.json" ]; then
    cp "$OUT/fleet/merged.json" "$OUT/fleet-merged.json"
    summary fleet-merged
    manifest_set fleet "$(jq --arg id "$id" --argjson n "$n" '{fleet_id: $id, size: $n, reported: (.runs | length), virtual_clients, target_rps, achieved_rps: .throughput_rps,
      span_s: (.span_s // .duration_s), common_window_s: (.common_window_s // null), success_rate, match_rate, p50_ms: .latency_ms.p50, p99_ms: .latency_ms.p99,
      start_skew_ms: ([(.runs // [])[].start_skew_ms // empty] | {min: min, max: max}), slo_passed: .slo.passed, slo_failures: .slo.failures}' "$OUT/fleet-merged.json")"
  fi
  cat "$OUT/fleet.txt"
  echo "fleet $id: exit status $rc (coordinator log: $OUT/logs/fleet.coordinator.log)" >&2
  FLEET_RC=$rc
}

# knee: the search for the highest rate that meets the SLO, as bin/rr-knee
# decides it (doubling from KNEE_START, then bisection; a rate passes when one
# of its runs does and fails after two failed runs, one of them with steal ≤
# KNEE_MAX_STEAL, within KNEE_TRIES: rr-knee -h). It asks for one run at a
# time, knee-RATE, knee-RATE-try2, ..., each on a fresh broker and worker (a
# report already in OUT is kept), and reads its result from OUT: the report's
# SLO verdict and the run's steal in summary.csv. Its state is
# logs/knee-search.json.
knee() {
  local cap=${KNEE_MAX:-320000} prec=${KNEE_PRECISION:-0.05} iv=${INTERVAL_MS:-2000} next rc=0 verb r name lo hi
  next=$("$BIN/rr-knee" start "$OUT" 2>&1) || rc=$?
  if [ "$rc" = 2 ]; then die_usage "${next#rr-knee: }"; elif [ "$rc" != 0 ]; then echo "$next" >&2; exit 1; fi
  echo "knee: offered rate from ${KNEE_START:-5000} req/s, doubling then bisection; a step passes with p99 ≤ ${SLO_P99_MS:-50} ms and match (and success) ≥ ${SLO_MATCH_RATE:-0.999}; $KNEE_SECS s per step" >&2
  while read -r verb r name <<<"$next" && [ "$verb" = run ]; do
    if [ ! -f "$OUT/$name.json" ]; then
      # || true: a step whose worker does not get ready runs on and misses
      STEP_TAG=$name with_stack "$KIND" run "$name" $(((r * iv + 999) / 1000)) "$iv" "$KNEE_SECS" "WARMUP=$(warmup_for "$KNEE_SECS")" "${SLO_ENV[@]}" || true
    fi
    next=$("$BIN/rr-knee" next "$OUT")
  done
  read -r verb lo hi <<<"$next"
  KNEE_RPS=$lo
  echo
  echo "curve (every step, by offered rate):"
  local f
  for f in "$OUT"/knee-[0-9]*.json; do
    jq -r --arg n "$(basename "$f" .json)" '"  \(.target_rps|floor) req/s\tp50 \(.latency_ms.p50) ms\tp99 \(.latency_ms.p99) ms\tp99.9 \(.latency_ms.p999) ms\tmatch \(.match_rate*1000000|floor/1000000)\tsuccess \(.success_rate*1000000|floor/1000000)\t\(if .slo.passed then "passed" else "FAILED" end)\t\($n)"' "$f"
  done | sort -n
  if [ "$lo" = 0 ]; then
    echo "KNEE: none — even $hi req/s missed the SLO"
  elif [ "$hi" = 0 ]; then
    echo "KNEE: at least $lo req/s (KNEE_MAX=$cap reached without a miss)"
  else
    echo "KNEE: $lo req/s (p99 ≤ ${SLO_P99_MS:-50} ms, match ≥ ${SLO_MATCH_RATE:-0.999}); $hi req/s missed"
  fi
  manifest_set knee "$(jq -n --argjson lo "$lo" --argjson hi "$hi" --argjson prec "$prec" \
    '{knee_rps: $lo, lowest_failing_rps: (if $hi > 0 then $hi else null end), precision: $prec}')"
  if [ "$lo" -ge 200 ] && [ "${KNEE_HALF:-1}" != 0 ]; then
    local half=$((lo / 2))
    echo "half the knee:"
    STEP_TAG=knee-half-$half with_stack "$KIND" run "knee-half-$half" $(((half * iv + 999) / 1000)) "$iv" "$KNEE_SECS" "WARMUP=$(warmup_for "$KNEE_SECS")" "${SLO_ENV[@]}"
    manifest_set half_knee "$(jq '{rate_rps: .target_rps, p50_ms: .latency_ms.p50, p90_ms: .latency_ms.p90, p99_ms: .latency_ms.p99, p999_ms: .latency_ms.p999, max_ms: .latency_ms.max, match_rate, loadgen_cpu_us_per_request: .process.sending_cpu_us_per_request}' "$OUT/knee-half-$half.json" 2>/dev/null || echo null)"
  fi
  if [ "${CEILING:-1}" != 0 ]; then
    echo "ceiling:"
    ceiling
    if [ -f "$OUT/ceiling.json" ] && [ "$lo" -gt 0 ]; then
      jq -r --argjson k "$lo" '"KNEE / CEILING: \($k) / \(.throughput_rps|floor) = \($k / .throughput_rps * 100 | round)% of what the broker and machine allow"' "$OUT/ceiling.json"
      manifest_set knee_fraction_of_ceiling "$(jq --argjson k "$lo" '$k / .throughput_rps * 1000 | round / 1000' "$OUT/ceiling.json")"
    fi
  fi
}

# ceiling: bin/rr-echo on a fresh broker of the same kind.
# floor: per broker, the broker's own round trip (rr-echo, 1 × 1 × 1: one
# request in flight, no queueing) against the pipeline's at 1k, 10k and 20k
# req/s; the ratio at 1k says how much of the figure is ours.
floor() {
  local s=${SECS:-10} kinds=("$KIND") k r
  if [ "$KIND" = mosquitto ]; then kinds+=(embedded); fi
  for k in "${kinds[@]}"; do
    ECHO_REQUESTERS=1 ECHO_OUTSTANDING=1 ECHO_RESPONDERS=1 STEP_TAG=floor-echo-$k with_broker "$k" echo_run "floor-echo-$k" "$s"
    for r in 1000 10000 20000; do
      STEP_TAG=floor-$r-$k with_stack "$k" run "floor-$r-$k" "$r" 1000 "$s" "WARMUP=$(warmup_for "$s")"
    done
    if ! jq -e . "$OUT/floor-echo-$k.json" "$OUT/floor-1000-$k.json" "$OUT/floor-10000-$k.json" "$OUT/floor-20000-$k.json" >/dev/null 2>&1; then
      echo "floor $k: a step left no report (see $OUT/logs)" >&2
      continue
    fi
    manifest_set "floor_$k" "$(jq -n --slurpfile e "$OUT/floor-echo-$k.json" --slurpfile a "$OUT/floor-1000-$k.json" \
      --slurpfile b "$OUT/floor-10000-$k.json" --slurpfile c "$OUT/floor-20000-$k.json" '
      def row: {p50_ms: .latency_ms.p50, p99_ms: .latency_ms.p99, schedule_lag_p50_ms: .schedule_lag_ms.p50,
        schedule_lag_p99_ms: .schedule_lag_ms.p99, broker_network_p50_ms: .broker_network_ms.p50,
        broker_network_p99_ms: .broker_network_ms.p99, loadgen_cpu_us_per_request: .process.sending_cpu_us_per_request};
      {echo_1x1: {p50_ms: $e[0].latency_ms.p50, p99_ms: $e[0].latency_ms.p99},
       pipeline_1000: ($a[0] | row), pipeline_10000: ($b[0] | row), pipeline_20000: ($c[0] | row),
       ratio_p50_1000_to_echo: (($a[0].latency_ms.p50 / $e[0].latency_ms.p50) * 100 | round / 100)}')"
    jq -r --arg k "$k" '.results["floor_" + $k] | "floor	\($k)	broker round trip (rr-echo 1x1) p50 \(.echo_1x1.p50_ms) p99 \(.echo_1x1.p99_ms) ms	pipeline at 1k p50 \(.pipeline_1000.p50_ms) p99 \(.pipeline_1000.p99_ms) ms (lag p50 \(.pipeline_1000.schedule_lag_p50_ms) p99 \(.pipeline_1000.schedule_lag_p99_ms) ms)	ratio \(.ratio_p50_1000_to_echo)"' "$OUT/manifest.json"
  done
}

ceiling() {
  STEP_TAG=ceiling with_broker "$KIND" echo_run ceiling "${SECS:-20}"
  if [ -f "$OUT/ceiling.json" ]; then
    manifest_set ceiling "$(jq '{round_trips_per_s: .throughput_rps, p50_ms: .latency_ms.p50, p99_ms: .latency_ms.p99, lost, requesters: .config.requesters, outstanding: .config.outstanding, responders: .config.responders, qos: .config.qos, payload_bytes: .config.payload_bytes}' "$OUT/ceiling.json")"
  fi
}

KNEE_SECS=${SECS:-20}
write_manifest "$@"
SUITE_STAT0=$(head -1 /proc/stat 2>/dev/null || true)
IV=${INTERVAL_MS:-2000}
# What the suite runs with, in the manifest (quick sets its own below; each
# step's report has its exact configuration under .config).
slo_json() { jq -n --arg p "${SLO_P99_MS:-50}" --arg m "${SLO_MATCH_RATE:-0.999}" --arg s "${SLO_SUCCESS_RATE:-${SLO_MATCH_RATE:-0.999}}" \
  '{p99_ms: ($p | tonumber), match_rate: ($m | tonumber), success_rate: ($s | tonumber)}'; }
case $SUITE in
  baseline) manifest_settings "$(jq -n --argjson iv "$IV" --argjson slo "$(slo_json)" '{virtual_clients: 100000, interval_ms: $iv, rate_rps: (100000000 / $iv), slo: $slo}')" ;;
  knee | rate | sweep) manifest_settings "$(jq -n --argjson iv "$IV" --argjson slo "$(slo_json)" '{interval_ms: $iv, slo: $slo}')" ;;
  clients) manifest_settings '{"rate_rps": 20000, "virtual_clients": [100000, 200000, 500000], "interval_ms": [5000, 10000, 25000]}' ;;
  mem1m) manifest_settings '{"rate_rps": 10000, "virtual_clients": 1000000, "interval_ms": 100000}' ;;
  workercpu) manifest_settings "$(jq -n --argjson r "$2" '{rate_rps: $r, interval_ms: 2000, worker: "MODE=health"}')" ;;
  autoscale) manifest_settings "$(jq -n --argjson b "${BASE_RATE:-5000}" --argjson st "${STEP_RATE:-25000}" --argjson at "${STEP_AT:-30}" \
    --argjson len "${STEP_SECS:-30}" --argjson tot "${TOTAL_SECS:-150}" \
    '{interval_ms: 2000, base_rps: $b, step_rps: $st, step_at_s: $at, step_s: $len, total_s: $tot, worker: "MODE=sleep SLEEP_MS=5"}')" ;;
esac
case $SUITE in
  quick)
    s=${SECS:-10} wu=$(warmup_for "${SECS:-10}") kinds=("$KIND")
    if [ "$KIND" = mosquitto ]; then kinds+=(embedded); fi
    ws=$(secs_of "$wu")
    measured=$(if [ -n "$ws" ]; then awk -v s="$s" -v w="$ws" 'BEGIN { printf "the first %g s a warm-up left out of the report (%g s measured)", w, s - w }'; else echo "the first $wu a warm-up left out of the report"; fi)
    printf -v brokers '%s, ' "${kinds[@]/#url/$BROKER_URL}"
    echo "quick: 10,000 req/s (10,000 virtual clients every 1000 ms) for $s s per broker, $measured; brokers: ${brokers%, }" >&2
    manifest_settings "$(jq -n --argjson s "$s" --arg wu "$wu" --arg ws "$ws" --args '{rate_rps: 10000, virtual_clients: 10000, interval_ms: 1000,
      duration_s: $s, warmup: $wu, measured_s: (if $ws == "" then null else $s - ($ws | tonumber) end), brokers: $ARGS.positional}' "${kinds[@]/#url/$BROKER_URL}")"
    for k in "${kinds[@]}"; do
      STEP_TAG=quick-$k with_stack "$k" run "quick-$k" 10000 1000 "$s" "WARMUP=$wu"
      if [ -f "$OUT/quick-$k.json" ]; then
        manifest_set "quick_$k" "$(jq '{rate_rps: .target_rps, achieved_rps: .throughput_rps, measured_s: .duration_s, success_rate, match_rate,
          p50_ms: .latency_ms.p50, p99_ms: .latency_ms.p99, p999_ms: .latency_ms.p999, max_ms: .latency_ms.max, slo_passed: .slo.passed}' "$OUT/quick-$k.json")"
      fi
    done
    ;;
  baseline)
    s=${SECS:-60}
    STEP_TAG=baseline with_stack "$KIND" run baseline 100000 "$IV" "$s" "WARMUP=$(warmup_for "$s")" "${SLO_ENV[@]}" ;;
  knee)
    knee ;;
  ceiling)
    ceiling ;;
  floor)
    floor ;;
  rate)
    r=$2; s=${3:-${SECS:-20}}
    STEP_TAG=rate-$r with_stack "$KIND" run "rate-$r" $(((r * IV + 999) / 1000)) "$IV" "$s" "WARMUP=$(warmup_for "$s")" "${SLO_ENV[@]}" ;;
  sweep)
    s=${SECS:-20}
    for r in 10000 20000 30000 40000 50000 60000; do
      STEP_TAG=sweep-$r with_stack "$KIND" run "sweep-$r" $(((r * IV + 999) / 1000)) "$IV" "$s" "WARMUP=$(warmup_for "$s")" "${SLO_ENV[@]}"
    done ;;
  mem1m)
    STEP_TAG=mem1m with_stack "$KIND" run mem1m 1000000 100000 "${SECS:-110}" ;;
  fleet)
    n=${2:-3} r=${3:-10000}
    manifest_settings "$(jq -n --argjson n "$n" --argjson r "$r" --argjson c "${FLEET_CLIENTS:-100000}" --argjson s "${SECS:-110}" --argjson slo "$(slo_json)" \
      '{loadgens: $n, rate_rps: $r, virtual_clients_each: $c, virtual_clients: ($n * $c), duration_s: $s, slo: $slo}')"
    FLEET_RC=1 # unless the coordinator ran
    STEP_TAG=fleet with_stack "$KIND" fleet "$n" "$r" "${SECS:-110}"
    finish
    exit "$FLEET_RC" ;;
  clients)
    s=${SECS:-30}
    for c in 100000 200000 500000; do
      STEP_TAG=clients-$c with_stack "$KIND" run "clients-$c" "$c" $((c / 20)) "$s" "WARMUP=$(warmup_for "$s")"
    done ;;
  all)
    for s in quick knee baseline clients mem1m autoscale; do
      OUT=$OUT/$s "$SELF" "$s" || echo "suite $s failed (exit $?)" >&2
    done ;;
  autoscale)
    WORKER_ENV=(MODE=sleep SLEEP_MS=5)
    for v in QUEUE_CAP SCALE_INTERVAL SCALE_MAX_WAIT SCALE_DOWN_WINDOW; do
      if [ -n "${!v:-}" ]; then WORKER_ENV+=("$v=${!v}"); fi
    done
    with_stack "$KIND" autoscale ;;
  workercpu)
    r=$2; s=${3:-${SECS:-20}}
    WORKER_ENV=(MODE=health)
    STEP_TAG=workercpu-$r with_stack "$KIND" workercpu "$r" "$s"
    STEP_TAG=respondercpu-$r with_broker "$KIND" respondercpu "$r" "$s" ;;
  *) die_usage "unknown suite $SUITE" ;;
esac
finish
