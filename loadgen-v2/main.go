// Command loadgen-v2 simulates many virtual MQTT requesters multiplexed over a
// small pool of connections and reports match rate and latency measured from
// the intended send time. Configuration is environment variables; run with -h
// for the table. `loadgen-v2 merge [-o merged.json] a.json b.json ...` merges
// the JSON reports of instances into one (text and JSON).
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/cliutil"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/envconf"
	buildinfo "github.com/mqtt-rr-bench/mqtt-rr-bench/internal/metrics"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/mqttconn"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/sockio"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/loadgen-v2/internal/app"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/loadgen-v2/internal/config"
)

func main() { os.Exit(run(os.Args[1:])) }

func run(args []string) int {
	if cliutil.WantsVersion(args) {
		fmt.Println(buildinfo.VersionLine("loadgen-v2"))
		return 0
	}
	if cliutil.WantsHelp(args) {
		_ = envconf.Usage(os.Stdout, "loadgen-v2", "MQTT request-response load generator (virtual clients over pooled connections)", &config.Config{})
		fmt.Print("\nSubcommands:\n" +
			"  merge [-o merged.json] REPORT.json...\n" +
			"      merge the JSON reports of instances (or merged reports): prints the text report, writes\n" +
			"      the JSON one to -o (it can be merged again); rates over the true span, first measured\n" +
			"      start to last end. Refused (exit 2, naming them): the same run twice, overlapping\n" +
			"      virtual-client ranges, different settings (QOS, SHARDS, INTERVAL_MS, ...). WARNINGs:\n" +
			"      start skew, windows of different lengths. SLO_P99_MS, SLO_MATCH_RATE, SLO_SUCCESS_RATE\n" +
			"      apply to the merged report (exit 3 when missed).\n" +
			"  fleet\n" +
			"      coordinate a fleet run (BROKER, FLEET_ID, FLEET_SIZE, FLEET_TIMEOUT, FLEET_START_DELAY,\n" +
			"      FLEET_RESULTS): waits for every loadgen, announces the common start, collects and merges\n" +
			"      their reports; exit 0, 3 (SLO missed or a loadgen missing, named), 2 (the fleet refused:\n" +
			"      a duplicate index, different settings), 1. The loadgens set FLEET_COORDINATOR=external.\n")
		fmt.Printf("\nInbound memory: at most CONNECTIONS × %d KiB (%.0f MiB at CONNECTIONS=100): per connection a %d KiB read\n"+
			"buffer and one message of at most %d MiB (at QOS 1 and 2 it is in the MQTT library's buffer instead, which may\n"+
			"hold the next one too). A larger inbound message is skipped unread and counted (oversized in the report); the\n"+
			"connection stays up. TRANSPORT=paho: paho's own reads, no bound.\n",
			mqttconn.InboundBytesPerConn>>10, 100*float64(mqttconn.InboundBytesPerConn)/(1<<20), sockio.DefaultReadBufferBytes>>10, mqttconn.DefaultMaxInboundFrame>>20)
		fmt.Println("\nExit status: 0 ok, 1 runtime error, 2 invalid configuration (merge: refused), 3 SLO not met,\n130 second signal.")
		return cliutil.ExitOK
	}
	if len(args) == 1 && args[0] == "fleet" {
		ctx, stop := cliutil.SignalContext(context.Background(), cliutil.Logger(os.Stderr, "info"), os.Exit)
		defer stop()
		return app.Coordinate(ctx, os.Stdout, os.Stderr)
	}
	if len(args) > 0 && args[0] == "merge" {
		return app.Merge(args[1:], os.Stdout, os.Stderr)
	}
	if len(args) > 0 {
		fmt.Fprintf(os.Stderr, "loadgen-v2: unknown argument %q (configuration is environment variables; -h lists them)\n", args[0])
		return cliutil.ExitConfig
	}
	cfg, err := config.Load()
	var res *config.Resolved
	if err == nil {
		res, err = cfg.Resolve()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen-v2:", err)
		return cliutil.ExitConfig
	}
	log := cliutil.Logger(os.Stderr, cfg.LogLevel)
	ctx, stop := cliutil.SignalContext(context.Background(), log, os.Exit)
	defer stop()
	code, err := app.Run(ctx, res, log, os.Stdout, os.Stderr)
	if err != nil {
		log.Error("loadgen failed", "err", err)
	}
	return code
}
