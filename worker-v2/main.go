// Command worker-v2 is the service side of the MQTT request-response
// benchmark: it takes requests from a shared subscription, processes them
// with an autoscaled pool of workers and publishes a response on each
// request's reply topic. Configuration is environment variables; -h lists
// them.
//
// Exit status: 0 after a clean shutdown (SIGINT/SIGTERM), 1 on a runtime
// error, 2 on invalid configuration, 130 on a second signal.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/envconf"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/worker-v2/internal/config"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/worker-v2/internal/engine"
)

const summary = "answers MQTT requests with an autoscaled pool of workers"

func main() { os.Exit(run()) }

func run() int {
	for _, a := range os.Args[1:] {
		switch a {
		case "-h", "-help", "--help", "help":
			if err := envconf.Usage(os.Stdout, "worker-v2", summary, &config.Config{}); err != nil {
				fmt.Fprintln(os.Stderr, "worker-v2:", err)
				return 1
			}
			return 0
		default:
			fmt.Fprintf(os.Stderr, "worker-v2: unexpected argument %q; configuration is read from the environment (see -h)\n", a)
			return 2
		}
	}

	cfg, err := config.Load()
	if err != nil {
		fmt.Fprintln(os.Stderr, "worker-v2:", err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: cfg.Level()}))

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	eng, err := engine.New(cfg, log, reg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "worker-v2:", err)
		if errors.Is(err, envconf.ErrInvalid) {
			return 2
		}
		return 1
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	go func() {
		s := <-sigs
		log.Info("signal received: draining; signal again to exit at once", "signal", s.String())
		cancel()
		s = <-sigs
		log.Warn("second signal: exiting without draining", "signal", s.String())
		os.Exit(130)
	}()

	if err := eng.Run(ctx); err != nil {
		log.Error("worker failed", "err", err)
		return 1
	}
	return 0
}
