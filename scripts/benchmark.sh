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

start_worker() {
  WORKER_HTTP=127.0.0.1:$(free_port)
  MQTT_BROKER=$BROKER_URL HTTP_ADDR=$WORKER_HTTP "$BIN/worker-v2" >"$OUT/worker.log" 2>&1 &
  WORKER_PID=$!; PIDS+=("$WORKER_PID")
  for _ in $(seq 200); do curl -fsS "http://$WORKER_HTTP/ready" >/dev/null 2>&1 && return 0; sleep 0.05; done
  echo "worker not ready" >&2; return 1
}

# run NAME CLIENTS INTERVAL_MS SECONDS: one loadgen run; prints a result line.
run() {
  local name=$1 clients=$2 interval=$3 secs=$4 rf="$OUT/$1.json"
  VIRTUAL_CLIENTS=$clients INTERVAL_MS=$interval DURATION=${secs}s BROKER=$BROKER_URL \
    METRICS_ADDR=127.0.0.1:0 REPORT_FILE=$rf CPU_PROFILE=${CPU_PROFILE:-} PROGRESS_INTERVAL=${PROGRESS_INTERVAL:-5s} \
    "$BIN/loadgen-v2" >"$OUT/$name.txt" 2>"$OUT/$name.log" || true
  jq -r --arg n "$name" --arg k "$KIND" '[$n, $k, .target_rps, .throughput_rps, .rate_ratio, .match_rate, .latency_ms.p50, .latency_ms.p99, .latency_ms.max, .process.sending_cpu_us_per_request, .process.max_rss_mb] |
    "\(.[0])\t\(.[1])\ttarget \(.[2]|floor)/s\tachieved \(.[3]|floor)/s\tratio \(.[4]*10000|round/10000)\tmatch \(.[5]*1000000|floor/1000000)\tp50 \(.[6]) ms\tp99 \(.[7]) ms\tmax \(.[8]) ms\tloadgen \(.[9]*10|round/10) µs/req\tRSS \(.[10]|floor) MB"' "$rf"
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
  *) sed -n '2,20p' "$0"; exit 2 ;;
esac
echo "reports in $OUT" >&2
