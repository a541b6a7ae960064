#!/usr/bin/env bash
# replay.bash DIR: the search of knee-before-go.bash (KNEE_* set it, as they
# did) against a made-up system, with DIR as its results folder. Prints
# "done KNEE LOWEST_FAILING"; DIR/runs.txt lists the runs in order.
#   FAKE_CAPACITY    a run at a rate up to this (req/s) passes,
#   FAKE_FLAP_BELOW  unless it is one of this percentage of them;
#   FAKE_FLAP_ABOVE  the percentage of runs above it that pass all the same;
#   FAKE_SEED        varies which runs flap, their CPU steal (unknown, or
#                    0.000 to 0.060) and which leave no report (1 in 25).
set -euo pipefail
OUT=$1 KIND=fake KNEE_SECS=1 SLO_ENV=()
# shellcheck source=SCRIPTDIR/knee-before-go.bash
. "$(dirname "$0")/knee-before-go.bash"
die_usage() { echo "$1" >&2; exit 2; }
warmup_for() { echo 0s; }
with_stack() { shift; "$@"; }

# run NAME CLIENTS ...: one made-up run: its report NAME.json and its row in
# summary.csv, as the script's run leaves them.
run() {
  local name=$1 rate try=1 h passed=false s
  rate=${name#knee-} && rate=${rate%-try*}
  case $name in *-try*) try=${name##*-try} ;; esac
  echo "$name" >>"$OUT/runs.txt"
  h=$(((rate * 2654435761 + try * 40503 + FAKE_SEED * 7919) % 1000003))
  if [ $((h / 800 % 25)) = 0 ]; then return 0; fi
  if [ "$rate" -le "$FAKE_CAPACITY" ]; then
    if [ $((h % 100)) -ge "$FAKE_FLAP_BELOW" ]; then passed=true; fi
  elif [ $((h % 100)) -lt "$FAKE_FLAP_ABOVE" ]; then passed=true
  fi
  s=$((h / 100 % 8))
  STEP_STEAL=""
  if [ "$s" -gt 0 ]; then STEP_STEAL=0.0$((s - 1))0; fi
  cat >"$OUT/$name.json" <<JSON
{"virtual_clients": $2, "interval_s": 1, "target_rps": $rate, "throughput_rps": $rate, "rate_ratio": 1,
 "success_rate": 1, "match_rate": 1, "latency_ms": {"count": 100, "p50": 1.5, "p90": 2.25, "p99": 3.5, "p999": 9.2, "max": 27.7},
 "process": {"sending_cpu_us_per_request": 10.5, "max_rss_mb": 40},
 "slo": {"p99_ms": 50, "match_rate": 0.999, "success_rate": 0.999, "passed": $passed}}
JSON
  record "$name"
  STEP_STEAL=""
}

knee
