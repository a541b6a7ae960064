#!/usr/bin/env bash
# Terminal dashboard for mqtt-rr-bench: loadgen-v2 /debug/vars and worker-v2
# /stats, refreshed every 2 seconds. Ctrl-C quits.
#
# Usage: scripts/dashboard.sh [--once] [--interval SECONDS] [--endpoints]
#   --once           print one snapshot and exit: status 0 if both endpoints
#                    answered, 1 if either did not
#   --interval N     refresh period in seconds (default 2, or DASHBOARD_INTERVAL)
#   --endpoints      print the endpoints it would read (LOADGEN_URL=, WORKER_URL=,
#                    SOURCE= lines, for eval) and exit
#
# Environment:
#   LOADGEN_URL     loadgen-v2 base URL   (default: make run's, else http://localhost:8090)
#   WORKER_URL      worker-v2 base URL    (default: make run's, else http://localhost:8080)
#   RR_LOCAL_STATE  the file where `make run` (rr-local) publishes its endpoints
#                   (default ${XDG_RUNTIME_DIR:-/tmp}/mqtt-rr-bench-local-UID.env); read
#                   when LOADGEN_URL / WORKER_URL are not set and its rr-local runs
#   NO_COLOR        set to disable colors
#
# Windows are labelled: "last N s" is the loadgen's last progress window
# (PROGRESS_INTERVAL), "run" the run so far. Match rates are settled:
# matched / (matched + timed out), requests in flight count neither way.
#
# Needs curl (python3 is used if curl is missing) and jq (python3 is used if
# jq is missing).
set -euo pipefail

# make run publishes where its endpoints are (rr-local writes the state
# file while it runs); explicit URLs win.
RR_LOCAL_STATE=${RR_LOCAL_STATE:-${XDG_RUNTIME_DIR:-/tmp}/mqtt-rr-bench-local-$UID.env}
SOURCE_NOTE=
if [[ -z ${LOADGEN_URL:-} || -z ${WORKER_URL:-} ]] && [[ -r $RR_LOCAL_STATE ]]; then
	state_pid=$(sed -n 's/^RR_LOCAL_PID=//p' "$RR_LOCAL_STATE")
	if [[ $state_pid =~ ^[0-9]+$ ]] && kill -0 "$state_pid" 2>/dev/null; then
		[[ -n ${LOADGEN_URL:-} ]] || LOADGEN_URL=$(sed -n 's/^LOADGEN_URL=//p' "$RR_LOCAL_STATE")
		[[ -n ${WORKER_URL:-} ]] || WORKER_URL=$(sed -n 's/^WORKER_URL=//p' "$RR_LOCAL_STATE")
		SOURCE_NOTE="make run (rr-local pid $state_pid, $RR_LOCAL_STATE)"
	fi
fi
LOADGEN_URL=${LOADGEN_URL:-http://localhost:8090}
WORKER_URL=${WORKER_URL:-http://localhost:8080}
LOADGEN_URL=${LOADGEN_URL%/}
WORKER_URL=${WORKER_URL%/}
INTERVAL=${DASHBOARD_INTERVAL:-2}
FETCH_TIMEOUT=${DASHBOARD_FETCH_TIMEOUT:-2}
ONCE=0
ENDPOINTS=0

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p;}' "${BASH_SOURCE[0]}"; }

while (($# > 0)); do
	case $1 in
	--once) ONCE=1 ;;
	--endpoints) ENDPOINTS=1 ;;
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

if ((ENDPOINTS == 1)); then
	printf 'LOADGEN_URL=%q\nWORKER_URL=%q\nSOURCE=%q\n' "$LOADGEN_URL" "$WORKER_URL" "${SOURCE_NOTE:-defaults or LOADGEN_URL/WORKER_URL}"
	exit 0
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
#            phase run_id window_s window_match_pct run_p50 run_p99 run_p999
#            run_max success_pct elapsed_s reconnects connection_losses
#   worker:  rate_rps workers queue_depth queue_cap fill_pct processed received
#            dropped_full malformed reply_failed in_flight connections_up
#            connections mode draining scaling_events last_scaling
#            min_workers max_workers oldest_ms
# (the window fields are the loadgen's last progress window, the run_ ones
# the run so far).
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
				| ($l.latency_total_ms // {}) as $tot
				| [($l.rate_rps|n), ($l.target_rps|n), pct($l.match_rate; 1), ($ms.p50|n), ($ms.p90|n),
				   ($ms.p99|n), ($ms.p999|n), ($ms.max|n), ($l.requests_sent|n),
				   ($l.responses_matched|n), ($l.timeouts|n), ($l.skipped|n), ($l.send_failed|n),
				   ($l.pending|n), ($l.virtual_clients|n), ($l.connections_up|n), ($l.connections|n),
				   ($l.instance_id|s), ($l.phase|s), ($l.run_id|s), ($l.window_s|n),
				   pct($l.interval_match_rate; 1), (if ($tot.count // 0) > 0 then ($tot.p50|n) else "-" end),
				   (if ($tot.count // 0) > 0 then ($tot.p99|n) else "-" end),
				   (if ($tot.count // 0) > 0 then ($tot.p999|n) else "-" end),
				   (if ($tot.count // 0) > 0 then ($tot.max|n) else "-" end),
				   pct($l.success_rate; 1), ($l.elapsed_s|n), ($l.reconnects|n), ($l.connection_losses|n)]
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
				    else "-" end),
				   (.min_workers|n), (.max_workers|n),
				   (if (.queue_oldest_seconds|type) == "number" then (.queue_oldest_seconds * 1000 | tostring) else "-" end)]
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
    tot = l.get("latency_total_ms") or {}
    has_tot = num(tot.get("count")) and tot.get("count") > 0
    row = [n(l.get("rate_rps")), n(l.get("target_rps")), pct(l.get("match_rate"), 1)] + \
          [n(ms.get(k)) for k in ("p50", "p90", "p99", "p999", "max")] + \
          [n(l.get(k)) for k in ("requests_sent", "responses_matched", "timeouts", "skipped", "send_failed", "pending",
                                 "virtual_clients", "connections_up", "connections")] + [s(l.get("instance_id"))] + \
          [s(l.get("phase")), s(l.get("run_id")), n(l.get("window_s")), pct(l.get("interval_match_rate"), 1)] + \
          [n(tot.get(k)) if has_tot else "-" for k in ("p50", "p99", "p999", "max")] + \
          [pct(l.get("success_rate"), 1), n(l.get("elapsed_s")), n(l.get("reconnects")), n(l.get("connection_losses"))]
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
          [s(d.get("mode")), s(d.get("draining")), count, last] + \
          [n(d.get("min_workers")), n(d.get("max_workers")),
           repr(d["queue_oldest_seconds"] * 1000) if num(d.get("queue_oldest_seconds")) else "-"]
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

# pct VALUE: VALUE (a percentage) with 3 decimals and "%", or "-" when absent.
pct() {
	if [[ $1 == - || -z $1 ]]; then printf '%s' -; else printf '%s%%' "$(f '%.3f' "$1")"; fi
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
		problem "NOT REACHABLE" "$body" "Is loadgen-v2 running (make run, make up)? make run publishes its endpoints in $RR_LOCAL_STATE; set LOADGEN_URL if it listens elsewhere."
		return 1
	fi
	if ! row=$(extract loadgen <<<"$body"); then
		problem "UNEXPECTED RESPONSE" "$(clean_err "$row")" "Is $LOADGEN_URL the METRICS_ADDR of loadgen-v2?"
		return 1
	fi
	local rate target match p50 p90 p99 p999 max sent matched timeouts skipped failed pending vcs conns nconns instance
	local phase runid window wmatch rp50 rp99 rp999 rmax success elapsed reconnects losses win
	IFS=$'\t' read -r rate target match p50 p90 p99 p999 max sent matched timeouts skipped failed pending vcs conns nconns \
		instance phase runid window wmatch rp50 rp99 rp999 rmax success elapsed reconnects losses <<<"$row"
	win="last $(f '%g' "$window") s"
	[[ $window == - ]] && win="last window"
	if [[ $phase != - && -n $phase ]]; then
		printf '  run %s  phase %s%s%s  elapsed %s s\n' "$runid" "$B" "$phase" "$RST" "$(f '%.1f' "$elapsed")"
	fi
	printf '  rate     %s%s%s req/s (target %s; %s)    match rate %s%s%%%s (settled, run)    pending %s\n' \
		"$B" "$(f '%.0f' "$rate")" "$RST" "$(f '%.0f' "$target")" "$win" \
		"$(grade "$match" 99.9 99 1)$B" "$(f '%.3f' "$match")" "$RST" "$(f '%.0f' "$pending")"
	printf '  latency  p50 %s  p90 %s  %sp99 %s%s  p99.9 %s  max %s  ms (%s; settled match %s)\n' \
		"$(f '%.2f' "$p50")" "$(f '%.2f' "$p90")" "$(grade "$p99" 20 50 0)$B" "$(f '%.2f' "$p99")" "$RST" \
		"$(f '%.2f' "$p999")" "$(f '%.2f' "$max")" "$win" "$(pct "$wmatch")"
	if [[ $rp99 != - ]]; then
		printf '  run      p50 %s  p99 %s  p99.9 %s  max %s  ms (run so far)    success rate %s\n' \
			"$(f '%.2f' "$rp50")" "$(f '%.2f' "$rp99")" "$(f '%.2f' "$rp999")" "$(f '%.2f' "$rmax")" "$(pct "$success")"
	fi
	printf '  sent %s  matched %s  timeouts %s  skipped %s  send failed %s  (run)\n' \
		"$(f '%.0f' "$sent")" "$(f '%.0f' "$matched")" "$(f '%.0f' "$timeouts")" "$(f '%.0f' "$skipped")" "$(f '%.0f' "$failed")"
	printf '  virtual clients %s  connections up %s/%s  reconnects %s  losses %s  instance %s\n' \
		"$(f '%.0f' "$vcs")" "$(f '%.0f' "$conns")" "$(f '%.0f' "$nconns")" "$(f '%.0f' "$reconnects")" "$(f '%.0f' "$losses")" "$instance"
	if [[ $phase == finished ]]; then
		printf '  %sFINISHED%s  whole run: match rate %s%%  success rate %s%%  p99 %s ms  sent %s  (final report: %s/report)\n' \
			"$GRN$B" "$RST" "$(f '%.4f' "$match")" "$(f '%.4f' "$success")" "$(f '%.2f' "$rp99")" "$(f '%.0f' "$sent")" "$LOADGEN_URL"
	fi
}

render_worker() {
	local url="$WORKER_URL/stats" body row
	printf '%sWORKER%s   %s\n' "$B" "$RST" "$url"
	if ! body=$(fetch "$url"); then
		problem "NOT REACHABLE" "$body" "Is worker-v2 running (make run, make up)? make run publishes its endpoints in $RR_LOCAL_STATE; set WORKER_URL if it listens elsewhere."
		return 1
	fi
	if ! row=$(extract worker <<<"$body"); then
		problem "UNEXPECTED RESPONSE" "$(clean_err "$row")" "Is $WORKER_URL the HTTP_ADDR of worker-v2?"
		return 1
	fi
	local rate workers depth cap fill processed received dropped malformed replyf inflight conns nconns mode draining
	local scaling last minw maxw oldest
	IFS=$'\t' read -r rate workers depth cap fill processed received dropped malformed replyf inflight conns nconns \
		mode draining scaling last minw maxw oldest <<<"$row"
	printf '  rate     %s%s%s msg/s    workers %s%s%s (min %s, max %s)    queue %s / %s (%s%s%%%s)    oldest %s ms    in flight %s\n' \
		"$B" "$(f '%.0f' "$rate")" "$RST" "$B" "$(f '%.0f' "$workers")" "$RST" "$(f '%.0f' "$minw")" "$(f '%.0f' "$maxw")" \
		"$(f '%.0f' "$depth")" "$(f '%.0f' "$cap")" "$(grade "$fill" 70 90 0)" "$(f '%.1f' "$fill")" "$RST" \
		"$(f '%.1f' "$oldest")" "$(f '%.0f' "$inflight")"
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
	if [[ -n $SOURCE_NOTE ]]; then
		printf '  %sendpoints of %s%s' "$DIM" "$SOURCE_NOTE" "$RST"
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
