// Package app ties worker-v2 together for main: HTTP endpoints, the engine
// run and the exit status. It exists so main stays wiring and so the whole
// binary can be run in-process by tests.
package app

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"runtime"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/cliutil"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/envconf"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/metrics"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/serve"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/worker-v2/internal/config"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/worker-v2/internal/engine"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/worker-v2/internal/gomaxprocs"
)

// Option adjusts Run; main passes none.
type Option func(*options)

type options struct {
	listening func(addr string)
}

// Listening makes Run call f with the bound HTTP address (e.g.
// "127.0.0.1:41234", the port chosen when HTTP_ADDR ends in :0) once the
// endpoints are served and before the engine connects, so /ready answers
// "starting" until the engine is ready. f is not called when HTTP_ADDR is
// empty or the configuration is invalid.
func Listening(f func(addr string)) Option {
	return func(o *options) { o.listening = f }
}

// Run runs one worker: it checks cfg, serves HTTP_ADDR (empty: no HTTP),
// runs the engine until ctx ends and its drain is done, and returns the exit
// status with the error behind it: cliutil.ExitOK after a clean shutdown,
// ExitConfig when cfg is invalid (the error wraps envconf.ErrInvalid; nothing
// has listened or connected), ExitError when it cannot listen or connect.
//
// Endpoints, served from before the engine connects until its drain has
// ended:
//
//   - /metrics: the engine's metrics, the Go and process collectors and
//     mqttrr_worker_build_info;
//   - /health: 200 "ok", else 503 with the reason ("connecting", "N of M
//     connections up", suspect connections, "draining"; engine.Health);
//   - /ready: 200 once the engine is connected, subscribed and its workers
//     run, 503 "starting" before and "draining" once ctx has ended
//     (engine.Readiness);
//   - /stats: engine.Stats as JSON.
//
// The worker writes nothing but its log: stdout and stderr are taken for the
// shape main shares with loadgen-v2 and are not written to.
func Run(ctx context.Context, cfg *config.Config, log *slog.Logger, stdout, stderr io.Writer, opts ...Option) (int, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		serve.BuildInfo(metrics.Namespace, "worker"))
	eng, err := engine.New(cfg, log, reg)
	if err != nil {
		if errors.Is(err, envconf.ErrInvalid) {
			return cliutil.ExitConfig, err
		}
		return cliutil.ExitError, err
	}
	// The endpoints outlive ctx: they answer /ready and /health with 503
	// "draining" and keep /stats current until the drain has ended.
	httpCtx, stopHTTP := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stopHTTP()
	if cfg.HTTPAddr != "" {
		l, err := serve.Listen(cfg.HTTPAddr)
		if err != nil {
			return cliutil.ExitError, err
		}
		srv := serve.New(reg, log)
		srv.Health("/health", eng.Health)
		srv.Health("/ready", eng.Readiness)
		srv.JSON("/stats", func() any { return eng.Stats() })
		addr := l.Addr().String()
		log.Info("http listening", "http_addr", addr)
		wg.Go(func() {
			if err := srv.Serve(httpCtx, l); err != nil {
				log.Error("http server stopped", "err", err)
			}
		})
		if o.listening != nil {
			o.listening(addr)
		}
	}
	if adaptProcs(cfg) {
		// Until the engine has drained (the drain is load too); stopped
		// before wg.Wait, since defers run last in, first out.
		procsCtx, stopProcs := context.WithCancel(context.WithoutCancel(ctx))
		defer stopProcs()
		wg.Go(func() { gomaxprocs.Run(procsCtx, gomaxprocs.Default(runtime.GOMAXPROCS(0)), log) })
	}
	if err := eng.Run(ctx); err != nil {
		return cliutil.ExitError, err
	}
	return cliutil.ExitOK, nil
}

// adaptProcs reports whether GOMAXPROCS follows the load (package gomaxprocs):
// not when the GOMAXPROCS variable fixes it, not in MODE=cpu (CPU-bound
// workers need every core), not on one processor.
func adaptProcs(cfg *config.Config) bool {
	_, fixed := os.LookupEnv("GOMAXPROCS")
	return !fixed && cfg.Mode != config.ModeCPU && runtime.GOMAXPROCS(0) > 1
}
