#!/usr/bin/env bash
# Benchmark suite: runs bin/worker-v2 and bin/loadgen-v2 against a broker
# started here (Mosquitto with benchmark settings on a free loopback port, or
# the embedded broker via bin/rr-local) and prints one line per run:
# achieved rate, match rate, p50/p99, loadgen CPU µs per request and RSS.
#
#   scripts/benchmark.sh quick            one short run per broker
#   scripts/benchmark.sh rate R [S]       one run at R req/s for S seconds (default 20) on Mosquitto
#   scripts/benchmark.sh sweep            rates 10k..60k on Mosquitto: find the knee (p99 < 50 ms, match ≥ 0.999)
#   scripts/benchmark.sh mem1m            1,000,000 virtual clients at 10k req/s: loadgen RSS
#   scripts/benchmark.sh clients          100k → 500k virtual clients at 20k req/s
#   scripts/benchmark.sh all              quick + sweep + mem1m
#   scripts/benchmark.sh autoscale        worker MODE=sleep SLEEP_MS=5 under 5k → 30k → 5k req/s (150 s):
#                                         workers, queue and processed rate every second, then the scaling events
#   scripts/benchmark.sh workercpu R [S]  worker CPU µs per request at R req/s for S seconds (default 20), MODE=health
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
# Environment: BROKER_KIND=mosquitto|embedded (default mosquitto, falls back to
# embedded when mosquitto is absent), OUT=dir for JSON reports (default a temp dir),
# plus any loadgen-v2/worker-v2 variable (e.g. CONNECTIONS, MODE).
# Loopback only; every run is bounded by DURATION and stops by itself.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-bin}
OUT=${OUT:-$(mktemp -d /tmp/rrbench.XXXXXX)}
mkdir -p "$OUT"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

if [ ! -x "$BIN/loadgen-v2" ] || [ ! -x "$BIN/worker-v2" ]; then echo "build first: make build" >&2; exit 1; fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

MOSQ=$(command -v mosquitto || ls /usr/sbin/mosquitto 2>/dev/null || true)
KIND=${BROKER_KIND:-mosquitto}
[ "$KIND" = mosquitto ] && [ -z "$MOSQ" ] && { echo "mosquitto absent: using the embedded broker" >&2; KIND=embedded; }

BROKER_URL=""
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
    "$MOSQ" -c "$OUT/mosquitto.conf" >"$OUT/mosquitto.log" 2>&1 &
  else
    BROKER_ADDR=127.0.0.1:$port "$BIN/rr-local" broker >"$OUT/broker.log" 2>&1 &
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
  MQTT_BROKER=$BROKER_URL HTTP_ADDR=$WORKER_HTTP env "${WORKER_ENV[@]}" "$BIN/worker-v2" >"$OUT/worker.log" 2>&1 &
  WORKER_PID=$!; PIDS+=("$WORKER_PID")
  for _ in $(seq 200); do curl -fsS "http://$WORKER_HTTP/ready" >/dev/null 2>&1 && return 0; sleep 0.05; done
  echo "worker not ready" >&2; return 1
}

# loadgen_bg NAME CLIENTS INTERVAL_MS SECONDS [VAR=value...]: starts one
# loadgen run in the background (LG_PID); summary NAME prints its result line.
loadgen_bg() {
  local name=$1 clients=$2 interval=$3 secs=$4; shift 4
  VIRTUAL_CLIENTS=$clients INTERVAL_MS=$interval DURATION=${secs}s BROKER=$BROKER_URL \
    METRICS_ADDR=127.0.0.1:0 REPORT_FILE="$OUT/$name.json" CPU_PROFILE=${CPU_PROFILE:-} PROGRESS_INTERVAL=${PROGRESS_INTERVAL:-5s} \
    env "$@" "$BIN/loadgen-v2" >"$OUT/$name.txt" 2>"$OUT/$name.log" &
  LG_PID=$!; PIDS+=("$LG_PID")
}
summary() {
  jq -r --arg n "$1" --arg k "$KIND" '[$n, $k, .target_rps, .throughput_rps, .rate_ratio, .match_rate, .latency_ms.p50, .latency_ms.p99, .latency_ms.max, .process.sending_cpu_us_per_request, .process.max_rss_mb] |
    "\(.[0])\t\(.[1])\ttarget \(.[2]|floor)/s\tachieved \(.[3]|floor)/s\tratio \(.[4]*10000|round/10000)\tmatch \(.[5]*1000000|floor/1000000)\tp50 \(.[6]) ms\tp99 \(.[7]) ms\tmax \(.[8]) ms\tloadgen \(.[9]*10|round/10) µs/req\tRSS \(.[10]|floor) MB"' "$OUT/$1.json"
}

# run NAME CLIENTS INTERVAL_MS SECONDS: one loadgen run; prints a result line.
run() {
  loadgen_bg "$@"
  wait "$LG_PID" || true
  summary "$1"
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

# workercpu R S: the worker's CPU per processed request at R req/s.
workercpu() {
  local r=$1 s=$2 name="workercpu-$1" c0 c1 p0 p1
  c0=$(cpu_ticks "$WORKER_PID"); p0=$(stat_now | cut -d' ' -f3)
  run "$name" $((r * 2)) 2000 "$s" >/dev/null
  c1=$(cpu_ticks "$WORKER_PID"); p1=$(stat_now | cut -d' ' -f3)
  jq -r --arg n "$name" --arg k "$KIND" --argjson tck "$(getconf CLK_TCK)" --argjson c "$((c1 - c0))" --argjson p "$((p1 - p0))" \
    '"\($n)\t\($k)\ttarget \(.target_rps|floor)/s\tachieved \(.throughput_rps|floor)/s\tmatch \(.match_rate*1000000|floor/1000000)\tworker processed \($p)\tworker CPU \($c / $tck * 100 | round / 100) s\tworker \(if $p > 0 then $c / $tck * 1e6 / $p * 100 | round / 100 else "n/a" end) µs/req"' "$OUT/$name.json"
}

with_stack() { # with_stack KIND cmd...: broker + worker around a command
  local kind=$1; shift
  KIND=$kind start_broker "$kind"; KIND=$kind
  start_worker
  "$@"
  stop_pid "$WORKER_PID"; stop_pid "$BROKER_PID"
}

case "${1:-quick}" in
  quick)
    with_stack "$KIND" run "quick-$KIND" 10000 1000 10
    [ "$KIND" = mosquitto ] && with_stack embedded run quick-embedded 10000 1000 10
    ;;
  rate)
    r=${2:?rate}; s=${3:-20}
    with_stack "$KIND" run "rate-$r" $((r * 2)) 2000 "$s" ;;
  sweep)
    for r in 10000 20000 30000 40000 50000 60000; do with_stack "$KIND" run "sweep-$r" $((r * 2)) 2000 20; done ;;
  mem1m)
    with_stack "$KIND" run mem1m 1000000 100000 60 ;;
  clients)
    for c in 100000 200000 500000; do with_stack "$KIND" run "clients-$c" "$c" $((c / 20)) 30; done ;;
  all)
    "$0" quick; "$0" sweep; "$0" mem1m ;;
  autoscale)
    WORKER_ENV=(MODE=sleep SLEEP_MS=5)
    for v in QUEUE_CAP SCALE_INTERVAL SCALE_MAX_WAIT SCALE_DOWN_WINDOW; do
      if [ -n "${!v:-}" ]; then WORKER_ENV+=("$v=${!v}"); fi
    done
    with_stack "$KIND" autoscale ;;
  workercpu)
    r=${2:?rate}; s=${3:-20}
    WORKER_ENV=(MODE=health)
    with_stack "$KIND" workercpu "$r" "$s" ;;
  *) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 2 ;;
esac
echo "reports in $OUT" >&2
