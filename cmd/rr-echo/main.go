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
	"log/slog"
	"os"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/cmd/rr-echo/internal/ceiling"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/cmd/rr-echo/internal/respond"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/cliutil"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/envconf"
	buildinfo "github.com/mqtt-rr-bench/mqtt-rr-bench/internal/metrics"
)

func main() { os.Exit(run(os.Args[1:])) }

const exitHelp = "Exit status: 0 ok, 1 runtime error (e.g. broker unreachable), 2 invalid configuration, 130 second signal."

func run(args []string) int {
	if len(args) > 0 && args[0] == "respond" {
		var cfg respond.Config
		return command("rr-echo respond", args[1:], &cfg,
			"plain paho echo responder for loadgen-v2's requests: the handler publishes each response (no queue, no workers)",
			"\nOutput: JSON on stdout when it stops (received, answered, malformed).",
			func(ctx context.Context, log *slog.Logger) ([]byte, error) {
				res, err := respond.Run(ctx, cfg, func() {
					log.Info("responder ready", "broker", cfg.Broker, "connections", cfg.Connections)
				})
				if err != nil {
					return nil, err
				}
				return json.Marshal(res)
			})
	}
	var cfg ceiling.Config
	return command("rr-echo", args, &cfg,
		"the simplest request/response over a broker: its ceiling on this machine",
		"\nOutput: JSON on stdout (round_trips, throughput_rps = round trips per second, latency_ms, histograms.latency).\n"+
			"\nSubcommands:\n  respond   the plain paho echo responder for loadgen-v2's requests (rr-echo respond -h)",
		func(ctx context.Context, _ *slog.Logger) ([]byte, error) {
			res, err := ceiling.Run(ctx, cfg)
			if err != nil {
				return nil, err
			}
			b, err := json.MarshalIndent(res, "", "  ")
			if err != nil {
				return nil, err
			}
			if cfg.ReportFile != "" {
				if err := os.WriteFile(cfg.ReportFile, append(b, '\n'), 0o644); err != nil {
					return nil, err
				}
			}
			return b, nil
		})
}

// command runs one subcommand: -h prints the variables of cfg and help;
// otherwise cfg is loaded from the environment, body runs until a signal,
// and the JSON it returns is printed. It returns the exit status.
func command(name string, args []string, cfg any, summary, help string, body func(context.Context, *slog.Logger) ([]byte, error)) int {
	if cliutil.WantsVersion(args) {
		fmt.Println(buildinfo.VersionLine("rr-echo"))
		return 0
	}
	if cliutil.WantsHelp(args) {
		_ = envconf.Usage(os.Stdout, name, summary, cfg)
		fmt.Println(help)
		fmt.Println(exitHelp)
		return cliutil.ExitOK
	}
	if len(args) > 0 {
		fmt.Fprintf(os.Stderr, "%s: unknown argument %q (configuration is environment variables; -h lists them)\n", name, args[0])
		return cliutil.ExitConfig
	}
	if err := envconf.Load(cfg); err != nil {
		fmt.Fprintln(os.Stderr, name+":", err)
		return cliutil.ExitConfig
	}
	log := cliutil.Logger(os.Stderr, "info")
	ctx, stop := cliutil.SignalContext(context.Background(), log, os.Exit)
	defer stop()
	out, err := body(ctx, log)
	if err != nil {
		fmt.Fprintln(os.Stderr, name+":", err)
		return cliutil.ExitError
	}
	_, _ = os.Stdout.Write(append(out, '\n'))
	return cliutil.ExitOK
}
