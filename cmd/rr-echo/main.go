// Command rr-echo measures the ceiling of a broker on this machine: plain paho
// responders that publish every request back, and requesters that keep a
// fixed number of requests in flight (closed loop, QoS 0, 16-byte payloads by
// default). It prints the round-trip rate and latency percentiles as JSON
// (the round-trip histogram included, as in loadgen-v2's report).
// `scripts/benchmark.sh ceiling` runs it next to the knee search.
// Configuration is environment variables; run with -h for the table.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/cliutil"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/echo"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/envconf"
)

func main() { os.Exit(run(os.Args[1:])) }

func run(args []string) int {
	if cliutil.WantsHelp(args) {
		_ = envconf.Usage(os.Stdout, "rr-echo", "the simplest request/response over a broker: its ceiling on this machine", &echo.Config{})
		fmt.Println("\nOutput: JSON on stdout (round_trips, throughput_rps = round trips per second, latency_ms, histograms.latency).")
		fmt.Println("Exit status: 0 ok, 1 runtime error (e.g. broker unreachable), 2 invalid configuration, 130 second signal.")
		return cliutil.ExitOK
	}
	if len(args) > 0 {
		fmt.Fprintf(os.Stderr, "rr-echo: unknown argument %q (configuration is environment variables; -h lists them)\n", args[0])
		return cliutil.ExitConfig
	}
	var cfg echo.Config
	if err := envconf.Load(&cfg); err != nil {
		fmt.Fprintln(os.Stderr, "rr-echo:", err)
		return cliutil.ExitConfig
	}
	log := cliutil.Logger(os.Stderr, "info")
	ctx, stop := cliutil.SignalContext(context.Background(), log, os.Exit)
	defer stop()
	res, err := echo.Run(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "rr-echo:", err)
		return cliutil.ExitError
	}
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		fmt.Fprintln(os.Stderr, "rr-echo:", err)
		return cliutil.ExitError
	}
	b = append(b, '\n')
	if cfg.ReportFile != "" {
		if err := os.WriteFile(cfg.ReportFile, b, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "rr-echo:", err)
			return cliutil.ExitError
		}
	}
	_, _ = os.Stdout.Write(b)
	return cliutil.ExitOK
}
