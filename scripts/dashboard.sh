#!/usr/bin/env bash
# Terminal dashboard for mqtt-rr-bench: loadgen-v2 /debug/vars and worker-v2
# /stats, refreshed every 2 seconds. Ctrl-C quits.
#
# Usage: scripts/dashboard.sh [--once] [--interval SECONDS]
#   --once           print one snapshot and exit: status 0 if both endpoints
#                    answered, 1 if either did not
#   --interval N     refresh period in seconds (default 2, or DASHBOARD_INTERVAL)
#
# Environment:
#   LOADGEN_URL   loadgen-v2 base URL   (default http://localhost:8090)
#   WORKER_URL    worker-v2 base URL    (default http://localhost:8080)
#   NO_COLOR      set to disable colors
#
# Needs curl (python3 is used if curl is missing) and jq (python3 is used if
# jq is missing).
set -euo pipefail

LOADGEN_URL=${LOADGEN_URL:-http://localhost:8090}
WORKER_URL=${WORKER_URL:-http://localhost:8080}
LOADGEN_URL=${LOADGEN_URL%/}
WORKER_URL=${WORKER_URL%/}
INTERVAL=${DASHBOARD_INTERVAL:-2}
FETCH_TIMEOUT=${DASHBOARD_FETCH_TIMEOUT:-2}
ONCE=0

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p;}' "${BASH_SOURCE[0]}"; }

while (($# > 0)); do
	case $1 in
	--once) ONCE=1 ;;
	--interval)
		[[ $# -ge 2 ]] || {
			echo "dashboard.sh: --interval needs a value" >&2
			exit 2
		}
		INTERVAL=$2
		shift
		;;
	--interval=*) INTERVAL=${1#*=} ;;
	-h | --help)
		usage
		exit 0
		;;
	*)
		echo "dashboard.sh: unknown argument '$1' (see --help)" >&2
		exit 2
		;;
	esac
	shift
done
if ! [[ $INTERVAL =~ ^[0-9]+([.][0-9]+)?$ ]] || [[ $INTERVAL =~ ^0+([.]0*)?$ ]]; then
	echo "dashboard.sh: --interval=$INTERVAL is not a positive number of seconds" >&2
	exit 2
fi

# --- tools -------------------------------------------------------------------

if command -v jq >/dev/null 2>&1 && [[ ${DASHBOARD_JSON_TOOL:-} != python3 ]]; then
	JSON_TOOL=jq
elif command -v python3 >/dev/null 2>&1; then
	JSON_TOOL=python3
else
	echo "dashboard.sh: needs jq or python3 to read the JSON endpoints" >&2
	exit 2
fi
if command -v curl >/dev/null 2>&1 && [[ ${DASHBOARD_HTTP_TOOL:-} != python3 ]]; then
	HTTP_TOOL=curl
elif command -v python3 >/dev/null 2>&1; then
	HTTP_TOOL=python3
else
	echo "dashboard.sh: needs curl or python3 to fetch the endpoints" >&2
	exit 2
fi

if [[ -t 1 && -z ${NO_COLOR:-} ]]; then
	B=$'\033[1m' DIM=$'\033[2m' RED=$'\033[31m' GRN=$'\033[32m' YEL=$'\033[33m' RST=$'\033[0m'
else
	B='' DIM='' RED='' GRN='' YEL='' RST=''
fi

# fetch URL: body on stdout; on failure a one-line reason on stdout, status 1.
fetch() {
	local out
	if [[ $HTTP_TOOL == curl ]]; then
		if out=$(curl -fsS --max-time "$FETCH_TIMEOUT" -H 'Accept: application/json' "$1" 2>&1); then
			printf '%s' "$out"
			return 0
		fi
		out=${out//$'\n'/ }
		printf '%s' "${out#curl: }"
		return 1
	fi
	python3 - "$1" "$FETCH_TIMEOUT" <<'PY'
import sys, urllib.error, urllib.request
try:
    with urllib.request.urlopen(sys.argv[1], timeout=float(sys.argv[2])) as r:
        sys.stdout.write(r.read().decode("utf-8", "replace"))
except Exception as e:  # any failure is reported, not raised
    if isinstance(e, urllib.error.HTTPError):
        sys.stdout.write(str(e))
    else:
        sys.stdout.write(str(getattr(e, "reason", None) or e))
    sys.exit(1)
PY
}

# The JSON tools only pick fields (tab-separated, "-" when absent); all
# layout is done in bash below, so the jq and python3 paths print the same.
# extract KIND: JSON on stdin, one TSV line on stdout; status 1 if the JSON
# is not what the endpoint should return. Fields:
#   loadgen: rate_rps target_rps match_pct p50 p90 p99 p999 max requests_sent
#            responses_matched timeouts skipped send_failed pending
#            virtual_clients connections_up connections instance_id
#   worker:  rate_rps workers queue_depth queue_cap fill_pct processed received
#            dropped_full malformed reply_failed in_flight connections_up
#            connections mode draining scaling_events last_scaling
# scaling_events may be a count or a list of recent events ({from, to,
# reason}); a list gives its length and describes its last entry.
extract() {
	local kind=$1
	if [[ $JSON_TOOL == jq ]]; then
		jq -r --arg kind "$kind" '
			def n: if type == "number" then tostring else "-" end;
			def s: if type == "string" and . != "" then gsub("[\t\n]"; " ") elif type == "boolean" then tostring else "-" end;
			def pct(a; b): if (a|type) == "number" and (b|type) == "number" and b != 0
				then (a / b * 100 | tostring) else "-" end;
			if $kind == "loadgen" then
				(.loadgen // error("no \"loadgen\" key in /debug/vars")) as $l
				| if ($l|type) != "object" then error("\"loadgen\" is not an object") else . end
				| ($l.latency_ms // {}) as $ms
				| [($l.rate_rps|n), ($l.target_rps|n), pct($l.match_rate; 1), ($ms.p50|n), ($ms.p90|n),
				   ($ms.p99|n), ($ms.p999|n), ($ms.max|n), ($l.requests_sent|n),
				   ($l.responses_matched|n), ($l.timeouts|n), ($l.skipped|n), ($l.send_failed|n),
				   ($l.pending|n), ($l.virtual_clients|n), ($l.connections_up|n), ($l.connections|n),
				   ($l.instance_id|s)]
			else
				if type != "object" then error("/stats is not a JSON object") else . end
				| .scaling_events as $se
				| [(.rate_rps|n), (.workers|n), (.queue_depth|n), (.queue_cap|n),
				   pct(.queue_depth; .queue_cap), (.processed|n), (.received|n), (.dropped_full|n),
				   (.malformed|n), (.reply_failed|n), (.in_flight|n), (.connections_up|n),
				   (.connections|n), (.mode|s), (.draining|s),
				   (if ($se|type) == "array" then ($se|length|tostring) else ($se|n) end),
				   (if ($se|type) == "array" and ($se|length) > 0
				    then ($se[-1] | "\(.from // "?")->\(.to // "?") \(.reason // "")" | gsub("[\t\n]"; " "))
				    else "-" end)]
			end | @tsv' 2>&1
		return
	fi
	python3 -c '
import json, sys
kind = sys.argv[1]
def num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)
def n(v):
    return repr(v) if num(v) else "-"
def s(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    return v.replace("\t", " ").replace("\n", " ") if isinstance(v, str) and v else "-"
def pct(a, b):
    return repr(a / b * 100) if num(a) and num(b) and b != 0 else "-"
try:
    d = json.load(sys.stdin)
except ValueError as e:
    sys.exit("not JSON: %s" % e)
if kind == "loadgen":
    l = d.get("loadgen") if isinstance(d, dict) else None
    if l is None:
        sys.exit("no \"loadgen\" key in /debug/vars")
    if not isinstance(l, dict):
        sys.exit("\"loadgen\" is not an object")
    ms = l.get("latency_ms") or {}
    row = [n(l.get("rate_rps")), n(l.get("target_rps")), pct(l.get("match_rate"), 1)] + \
          [n(ms.get(k)) for k in ("p50", "p90", "p99", "p999", "max")] + \
          [n(l.get(k)) for k in ("requests_sent", "responses_matched", "timeouts", "skipped", "send_failed", "pending",
                                 "virtual_clients", "connections_up", "connections")] + [s(l.get("instance_id"))]
else:
    if not isinstance(d, dict):
        sys.exit("/stats is not a JSON object")
    se = d.get("scaling_events")
    if isinstance(se, list):
        count = str(len(se))
        last = se[-1] if se and isinstance(se[-1], dict) else None
        last = s("%s->%s %s" % (last.get("from", "?"), last.get("to", "?"), last.get("reason", ""))) if last else "-"
    else:
        count, last = n(se), "-"
    row = [n(d.get("rate_rps")), n(d.get("workers")), n(d.get("queue_depth")), n(d.get("queue_cap")),
           pct(d.get("queue_depth"), d.get("queue_cap"))] + \
          [n(d.get(k)) for k in ("processed", "received", "dropped_full", "malformed", "reply_failed", "in_flight",
                                 "connections_up", "connections")] + \
          [s(d.get("mode")), s(d.get("draining")), count, last]
print("\t".join(row))
' "$kind" 2>&1
}

# f FORMAT VALUE: printf VALUE with FORMAT, or "-" when it is absent.
f() {
	if [[ $2 == - || -z $2 ]]; then
		printf '%s' -
	else
		# shellcheck disable=SC2059 # the format is always one of ours
		printf "$1" "$2" 2>/dev/null || printf '%s' "$2"
	fi
}

# grade VALUE GOOD WARN HIGHER_IS_BETTER: a color for a threshold.
grade() {
	local v=$1 good=$2 warn=$3 higher=$4
	[[ $v == - ]] && return
	if awk -v v="$v" -v g="$good" -v h="$higher" 'BEGIN { exit !(h ? v >= g : v <= g) }'; then
		printf '%s' "$GRN"
	elif awk -v v="$v" -v w="$warn" -v h="$higher" 'BEGIN { exit !(h ? v >= w : v <= w) }'; then
		printf '%s' "$YEL"
	else
		printf '%s' "$RED"
	fi
}

# problem LABEL REASON HINT
problem() {
	printf '  %s%s%s  %s\n' "$RED$B" "$1" "$RST" "$2"
	printf '  %s%s%s\n' "$DIM" "$3" "$RST"
}

# clean_err TEXT: one line, without the jq location prefix.
clean_err() {
	local e=${1//$'\n'/ }
	e=${e#jq: error (at <stdin>:*): }
	printf '%s' "$e"
}

render_loadgen() {
	local url="$LOADGEN_URL/debug/vars" body row
	printf '%sLOADGEN%s  %s\n' "$B" "$RST" "$url"
	if ! body=$(fetch "$url"); then
		problem "NOT REACHABLE" "$body" "Is loadgen-v2 running (make up)? Set LOADGEN_URL if it listens elsewhere."
		return 1
	fi
	if ! row=$(extract loadgen <<<"$body"); then
		problem "UNEXPECTED RESPONSE" "$(clean_err "$row")" "Is $LOADGEN_URL the METRICS_ADDR of loadgen-v2?"
		return 1
	fi
	local rate target match p50 p90 p99 p999 max sent matched timeouts skipped failed pending vcs conns nconns instance
	IFS=$'\t' read -r rate target match p50 p90 p99 p999 max sent matched timeouts skipped failed pending vcs conns nconns \
		instance <<<"$row"
	printf '  rate     %s%s%s req/s (target %s)    match rate %s%s%%%s    pending %s\n' \
		"$B" "$(f '%.0f' "$rate")" "$RST" "$(f '%.0f' "$target")" \
		"$(grade "$match" 99.9 99 1)$B" "$(f '%.3f' "$match")" "$RST" "$(f '%.0f' "$pending")"
	printf '  latency  p50 %s  p90 %s  %sp99 %s%s  p99.9 %s  max %s  ms\n' \
		"$(f '%.2f' "$p50")" "$(f '%.2f' "$p90")" "$(grade "$p99" 20 50 0)$B" "$(f '%.2f' "$p99")" "$RST" \
		"$(f '%.2f' "$p999")" "$(f '%.2f' "$max")"
	printf '  sent %s  matched %s  timeouts %s  skipped %s  send failed %s\n' \
		"$(f '%.0f' "$sent")" "$(f '%.0f' "$matched")" "$(f '%.0f' "$timeouts")" "$(f '%.0f' "$skipped")" "$(f '%.0f' "$failed")"
	printf '  virtual clients %s  connections up %s/%s  instance %s\n' \
		"$(f '%.0f' "$vcs")" "$(f '%.0f' "$conns")" "$(f '%.0f' "$nconns")" "$instance"
}

render_worker() {
	local url="$WORKER_URL/stats" body row
	printf '%sWORKER%s   %s\n' "$B" "$RST" "$url"
	if ! body=$(fetch "$url"); then
		problem "NOT REACHABLE" "$body" "Is worker-v2 running (make up)? Set WORKER_URL if it listens elsewhere."
		return 1
	fi
	if ! row=$(extract worker <<<"$body"); then
		problem "UNEXPECTED RESPONSE" "$(clean_err "$row")" "Is $WORKER_URL the HTTP_ADDR of worker-v2?"
		return 1
	fi
	local rate workers depth cap fill processed received dropped malformed replyf inflight conns nconns mode draining
	local scaling last
	IFS=$'\t' read -r rate workers depth cap fill processed received dropped malformed replyf inflight conns nconns \
		mode draining scaling last <<<"$row"
	printf '  rate     %s%s%s msg/s    workers %s%s%s    queue %s / %s (%s%s%%%s)    in flight %s\n' \
		"$B" "$(f '%.0f' "$rate")" "$RST" "$B" "$(f '%.0f' "$workers")" "$RST" \
		"$(f '%.0f' "$depth")" "$(f '%.0f' "$cap")" "$(grade "$fill" 70 90 0)" "$(f '%.1f' "$fill")" "$RST" \
		"$(f '%.0f' "$inflight")"
	printf '  received %s  processed %s  dropped (full) %s  malformed %s  reply failed %s\n' \
		"$(f '%.0f' "$received")" "$(f '%.0f' "$processed")" "$(f '%.0f' "$dropped")" "$(f '%.0f' "$malformed")" \
		"$(f '%.0f' "$replyf")"
	printf '  connections up %s/%s  mode %s  scaling events %s (last: %s)%s\n' \
		"$(f '%.0f' "$conns")" "$(f '%.0f' "$nconns")" "$mode" "$(f '%.0f' "$scaling")" "$last" \
		"$([[ $draining == true ]] && printf '  %sDRAINING%s' "$YEL$B" "$RST")"
}

# frame prints one snapshot; status 1 if an endpoint did not answer.
frame() {
	local rc=0
	printf '%smqtt-rr-bench%s  %s' "$B" "$RST" "$(date '+%Y-%m-%d %H:%M:%S')"
	if ((ONCE == 0)); then
		printf '  %s(every %ss, Ctrl-C to quit)%s' "$DIM" "$INTERVAL" "$RST"
	fi
	printf '\n\n'
	render_loadgen || rc=1
	printf '\n'
	render_worker || rc=1
	return "$rc"
}

if ((ONCE == 1)); then
	frame
	exit
fi

SLEEP_PID=
on_exit() {
	if [[ -n $SLEEP_PID ]]; then kill "$SLEEP_PID" 2>/dev/null || true; fi
	if [[ -t 1 ]]; then printf '\033[?25h'; fi # cursor back on
	printf '\n'
	exit 0
}
trap on_exit INT TERM
if [[ -t 1 ]]; then printf '\033[?25l'; fi # hide cursor while refreshing

while :; do
	# Build the frame first, then clear and print it at once: no flicker.
	out=$(frame) || true
	if [[ -t 1 ]]; then printf '\033[H\033[2J'; fi
	printf '%s\n' "$out"
	sleep "$INTERVAL" &
	SLEEP_PID=$!
	wait "$SLEEP_PID" || true
	SLEEP_PID=
done
