# The knee search of scripts/benchmark.sh as it was in bash and awk before
# rr-knee (git eda5fad), kept as the oracle that rr-knee's tests replay:
# is_uint (line 86), CSV_HEADER and record (213-223), knee_step and the search
# part of knee (512-570), copied unchanged. The last two lines end knee here
# and print what it found; the runs are done by the test's own `with_stack`.
# shellcheck disable=SC2034 # KNEE_RPS: the copy ends before its use
is_uint() { case $1 in '' | *[!0-9]*) return 1 ;; esac; }

CSV_HEADER=step,broker,kind,virtual_clients,interval_ms,target_rps,achieved_rps,rate_ratio,success_rate,match_rate,p50_ms,p90_ms,p99_ms,p999_ms,max_ms,slo_passed,loadgen_cpu_us_per_request,loadgen_max_rss_mb,cpu_steal,report
# record NAME: adds step NAME (its report NAME.json) to steps.txt and summary.csv.
record() {
  [ -s "$OUT/summary.csv" ] || echo "$CSV_HEADER" >"$OUT/summary.csv"
  jq -r --arg n "$1" --arg k "$KIND" --arg st "${STEP_STEAL:-}" '[$n, $k, (.kind // "loadgen"), .virtual_clients, (.interval_s | if . == null then null else . * 1000 | round end),
    .target_rps, .throughput_rps, .rate_ratio, .success_rate, .match_rate, .latency_ms.p50, .latency_ms.p90, .latency_ms.p99,
    .latency_ms.p999, .latency_ms.max, .slo.passed, .process.sending_cpu_us_per_request, .process.max_rss_mb,
    (if $st == "" then null else ($st | tonumber) end), ($n + ".json")] | @csv' \
    "$OUT/$1.json" >>"$OUT/summary.csv"
  jq -r --arg n "$1" '"\($n) \(.kind // "loadgen")"' "$OUT/$1.json" >>"$OUT/steps.txt"
}

# knee_step RATE: runs at RATE, each on a fresh broker and worker; succeeds
# when one run's SLO verdict (the loadgen's) is "passed". On a shared machine
# a burst of someone else's work, or the hypervisor taking the CPU for other
# guests (steal), can fail a run, while nothing makes a run pass that the
# system cannot carry. So a rate fails only after two failed runs of which at
# least one ran with steal ≤ KNEE_MAX_STEAL (default 0.03 of the CPU time),
# within KNEE_TRIES runs (default 4); KNEE_CONFIRM=0: after the first clean
# failure. The runs are knee-RATE, knee-RATE-try2, ...
knee_step() {
  local r=$1 iv=${INTERVAL_MS:-2000} name try=1 fails=0 clean=0 steal
  local tries=${KNEE_TRIES:-4} max_steal=${KNEE_MAX_STEAL:-0.03} need=2
  if [ "${KNEE_CONFIRM:-1}" = 0 ]; then need=1; fi
  while [ "$try" -le "$tries" ]; do
    name=knee-$r
    if [ "$try" -gt 1 ]; then name=knee-$r-try$try; fi
    if [ ! -f "$OUT/$name.json" ]; then
      STEP_TAG=$name with_stack "$KIND" run "$name" $(((r * iv + 999) / 1000)) "$iv" "$KNEE_SECS" "WARMUP=$(warmup_for "$KNEE_SECS")" "${SLO_ENV[@]}"
    fi
    if jq -e '.slo.passed' "$OUT/$name.json" >/dev/null 2>&1; then return 0; fi
    fails=$((fails + 1))
    steal=$(awk -F, -v n="\"$name\"" '$1 == n { print $19 }' "$OUT/summary.csv" 2>/dev/null)
    if awk -v s="${steal:-0}" -v m="$max_steal" 'BEGIN { exit !(s <= m) }'; then clean=$((clean + 1)); fi
    if [ "$fails" -ge "$need" ] && [ "$clean" -ge 1 ]; then return 1; fi
    try=$((try + 1))
  done
  return 1
}

# knee: doubling from KNEE_START while the SLO holds, then bisection between
# the highest passing and the lowest failing rate.
knee() {
  local r=${KNEE_START:-5000} cap=${KNEE_MAX:-320000} prec=${KNEE_PRECISION:-0.05} lo=0 hi=0 mid
  if ! is_uint "$r" || [ "$r" -lt 100 ]; then die_usage "KNEE_START=$r: want a rate of at least 100 req/s"; fi
  echo "knee: offered rate from $r req/s, doubling then bisection; a step passes with p99 ≤ ${SLO_P99_MS:-50} ms and match (and success) ≥ ${SLO_MATCH_RATE:-0.999}; $KNEE_SECS s per step" >&2
  while :; do
    if knee_step "$r"; then
      lo=$r
      [ $((r * 2)) -le "$cap" ] || break
      r=$((r * 2))
    else
      hi=$r
      break
    fi
  done
  if [ "$lo" = 0 ]; then # the first rate already missed: halve down
    while [ "$r" -ge 200 ]; do
      r=$((r / 2))
      if knee_step "$r"; then lo=$r; break; fi
      hi=$r
    done
  fi
  if [ "$lo" -gt 0 ] && [ "$hi" -gt 0 ]; then
    while awk -v lo="$lo" -v hi="$hi" -v p="$prec" 'BEGIN { exit !((hi - lo) > lo * p) }'; do
      mid=$((((lo + hi) / 2 + 50) / 100 * 100))
      if [ "$mid" -le "$lo" ] || [ "$mid" -ge "$hi" ]; then break; fi
      if knee_step "$mid"; then lo=$mid; else hi=$mid; fi
    done
  fi
  KNEE_RPS=$lo
  echo "done $lo $hi"
}
