// Command worker-v2 is the service side of the MQTT request-response
// benchmark: it takes requests from a shared subscription, processes them
// with an autoscaled pool of workers and publishes a response on each
// request's reply topic (or MQTT 5 Response Topic). Configuration is
// environment variables; run with -h for the table.
//
// Exit status: 0 after a clean shutdown (SIGINT/SIGTERM), 1 on a runtime
// error, 2 on invalid configuration, 130 on a second signal.
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
	"github.com/mqtt-rr-bench/mqtt-rr-bench/worker-v2/internal/app"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/worker-v2/internal/config"
)

func main() { os.Exit(run(os.Args[1:])) }

func run(args []string) int {
	if cliutil.WantsVersion(args) {
		fmt.Println(buildinfo.VersionLine("worker-v2"))
		return 0
	}
	if cliutil.WantsHelp(args) {
		_ = envconf.Usage(os.Stdout, "worker-v2", "answers MQTT requests with an autoscaled pool of workers", &config.Config{})
		fmt.Printf("\nInbound memory: at most CONNECTIONS × %d KiB (%.0f MiB at CONNECTIONS=10), besides the queue (QUEUE_MAX_BYTES):\n"+
			"per connection a %d KiB read buffer and one message of at most %d MiB (at QOS 1 and 2 it is in the MQTT library's\n"+
			"buffer instead, which may hold the next one too). A larger inbound message is skipped unread and counted\n"+
			"(inbound_oversized in /stats); the connection stays up.\n",
			mqttconn.InboundBytesPerConn>>10, 10*float64(mqttconn.InboundBytesPerConn)/(1<<20), sockio.DefaultReadBufferBytes>>10, mqttconn.DefaultMaxInboundFrame>>20)
		fmt.Println("\nExit status: 0 after a clean shutdown, 1 runtime error, 2 invalid configuration, 130 second signal.")
		return cliutil.ExitOK
	}
	if len(args) > 0 {
		fmt.Fprintf(os.Stderr, "worker-v2: unknown argument %q (configuration is environment variables; -h lists them)\n", args[0])
		return cliutil.ExitConfig
	}
	cfg, err := config.Load()
	var res *config.Resolved
	if err == nil {
		res, err = cfg.Resolve()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "worker-v2:", err)
		return cliutil.ExitConfig
	}
	log := cliutil.Logger(os.Stderr, cfg.LogLevel)
	ctx, stop := cliutil.SignalContext(context.Background(), log, os.Exit)
	defer stop()
	code, err := app.Run(ctx, res, log, os.Stdout, os.Stderr)
	if err != nil {
		log.Error("worker failed", "err", err)
	}
	return code
}
