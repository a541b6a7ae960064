// Command rr-local runs a whole benchmark on one machine with nothing
// installed but Go: the embedded broker on a free loopback port, one
// worker-v2 and one loadgen-v2 as child processes, then it prints the
// loadgen's report and leaves no process behind. `make run` uses it.
//
// The environment is passed to both children (so VIRTUAL_CLIENTS, MODE, ...
// apply); BROKER/MQTT_BROKER point at the embedded broker. The HTTP ports
// are 127.0.0.1:8090 (loadgen) and 127.0.0.1:8080 (worker) when free, else
// free loopback ports (set METRICS_ADDR / HTTP_ADDR to pin them); while it
// runs, rr-local publishes them in RR_LOCAL_STATE for make stats, make
// dashboard and make dashboard-web. After the report they stay up for
// METRICS_LINGER (default 60s here; 0 = exit at once), so the dashboards
// keep showing the finished run.
// Ctrl-C stops the loadgen gracefully (it drains and reports), or ends the
// linger; a second Ctrl-C kills everything at once. Exit status is the
// loadgen's.
package main

import (
	"fmt"
	"os"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/cmd/rr-local/internal/localrun"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/cliutil"
	buildinfo "github.com/mqtt-rr-bench/mqtt-rr-bench/internal/metrics"
)

func main() {
	if cliutil.WantsVersion(os.Args[1:]) {
		fmt.Println(buildinfo.VersionLine("rr-local"))
		return
	}
	if cliutil.WantsHelp(os.Args[1:]) {
		fmt.Println(`rr-local: embedded broker + worker-v2 + loadgen-v2 on this machine.
Variables (besides those of loadgen-v2 and worker-v2, see their -h):
  BROKER_ADDR  embedded broker listen address (default 127.0.0.1:0, a free port)
  BIN_DIR      directory holding loadgen-v2 and worker-v2 (default: this binary's directory)
  RR_LOCAL_STATE  file publishing the endpoints while the run lasts (LOADGEN_URL=, WORKER_URL=,
               BROKER_URL=, RR_LOCAL_PID= lines; default $XDG_RUNTIME_DIR or /tmp,
               mqtt-rr-bench-local-UID.env); ports 8090/8080 when free, else free ones
  METRICS_LINGER  after the report, the endpoints (the loadgen's /report) stay up this long for
               the dashboards (default 60s here; Ctrl-C ends it; 0 = exit at once)
rr-local broker: run only the embedded broker on BROKER_ADDR until SIGINT/SIGTERM.`)
		return
	}
	if len(os.Args) > 1 && os.Args[1] == "broker" {
		os.Exit(localrun.BrokerOnly(os.Stderr))
	}
	os.Exit(localrun.Main(os.Stdout, os.Stderr))
}
