// Command rr-echo measures the ceiling of a broker on this machine: plain paho
// responders that publish every request back, and requesters that keep a
// fixed number of requests in flight (closed loop, QoS 0, 16-byte payloads by
// default). It prints the round-trip rate and latency percentiles as JSON
// (the round-trip histogram included, as in loadgen-v2's report).
// `scripts/benchmark.sh ceiling` runs it next to the knee search.
//
// `rr-echo respond` is the plain paho echo responder instead: it answers
// loadgen-v2's requests from paho's message handler (no queue, no pool) until
// SIGINT/SIGTERM or DURATION, then prints what it answered as JSON.
// `scripts/benchmark.sh workercpu` reads worker-v2's CPU against it.
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
		fmt.Println("\nSubcommands:\n  respond   the plain paho echo responder for loadgen-v2's requests (rr-echo respond -h)")
		fmt.Println("Exit status: 0 ok, 1 runtime error (e.g. broker unreachable), 2 invalid configuration, 130 second signal.")
		return cliutil.ExitOK
	}
	if len(args) > 0 && args[0] == "respond" {
		return respond(args[1:])
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

// respond runs `rr-echo respond`.
func respond(args []string) int {
	if cliutil.WantsHelp(args) {
		_ = envconf.Usage(os.Stdout, "rr-echo respond", "plain paho echo responder for loadgen-v2's requests: the handler publishes each response (no queue, no workers)", &echo.RespondConfig{})
		fmt.Println("\nOutput: JSON on stdout when it stops (received, answered, malformed).")
		fmt.Println("Exit status: 0 ok, 1 runtime error (e.g. broker unreachable), 2 invalid configuration, 130 second signal.")
		return cliutil.ExitOK
	}
	if len(args) > 0 {
		fmt.Fprintf(os.Stderr, "rr-echo respond: unknown argument %q (configuration is environment variables; -h lists them)\n", args[0])
		return cliutil.ExitConfig
	}
	var cfg echo.RespondConfig
	if err := envconf.Load(&cfg); err != nil {
		fmt.Fprintln(os.Stderr, "rr-echo respond:", err)
		return cliutil.ExitConfig
	}
	log := cliutil.Logger(os.Stderr, "info")
	ctx, stop := cliutil.SignalContext(context.Background(), log, os.Exit)
	defer stop()
	res, err := echo.Respond(ctx, cfg, func() {
		log.Info("responder ready", "broker", cfg.Broker, "connections", cfg.Connections)
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "rr-echo respond:", err)
		return cliutil.ExitError
	}
	b, err := json.Marshal(res)
	if err != nil {
		fmt.Fprintln(os.Stderr, "rr-echo respond:", err)
		return cliutil.ExitError
	}
	_, _ = os.Stdout.Write(append(b, '\n'))
	return cliutil.ExitOK
}
