// Package app ties worker-v2 together for main: the engine, its metrics,
// the HTTP endpoints (with health and readiness), GOMAXPROCS following the
// load, and the exit status. It exists so main stays wiring and so the whole
// binary can be run in-process by tests.
package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/cliutil"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/envconf"
	sharedmetrics "github.com/mqtt-rr-bench/mqtt-rr-bench/internal/metrics"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/serve"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/worker-v2/internal/config"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/worker-v2/internal/engine"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/worker-v2/internal/gomaxprocs"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/worker-v2/internal/metrics"
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
// empty.
func Listening(f func(addr string)) Option {
	return func(o *options) { o.listening = f }
}

// Run runs one worker for cfg (resolved from a valid configuration): it
// serves HTTP_ADDR (empty: no HTTP), runs the engine until ctx ends and its
// drain is done, and returns the exit status with the error behind it:
// cliutil.ExitOK after a clean shutdown, cliutil.ExitError when it cannot
// listen or connect.
//
// Endpoints, served from before the engine connects until its drain has
// ended:
//
//   - /metrics: the engine's metrics (package metrics), the Go and process
//     collectors and mqttrr_worker_build_info;
//   - /health: 200 "ok", else 503 with the reason (health);
//   - /ready: 200 once the engine is connected, subscribed and its workers
//     run, else 503 (readiness);
//   - /stats and /debug/vars: engine.Stats as JSON (/debug/vars as
//     {"worker": Stats}).
//
// The worker writes nothing but its log: stdout and stderr are taken for the
// shape main shares with loadgen-v2 and are not written to.
func Run(ctx context.Context, cfg *config.Resolved, log *slog.Logger, stdout, stderr io.Writer, opts ...Option) (int, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if cfg.BrokerConflict {
		log.Warn(cfg.BrokerNote, "broker", cfg.Broker)
	} else if cfg.BrokerNote != "" {
		log.Info(cfg.BrokerNote, "broker", cfg.Broker)
	}
	eng := engine.New(cfg, nil, log)
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		sharedmetrics.BuildInfo("worker"))
	if err := metrics.New(eng).Register(reg); err != nil {
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
		srv.Health("/health", health(eng, cfg.KeepAlive))
		srv.Health("/ready", readiness(eng))
		srv.Stats("worker", func() any { return eng.Stats() })
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
	if cfg.AdaptGOMAXPROCS {
		// Until the engine has drained (the drain is load too); stopped
		// before wg.Wait, since defers run last in, first out.
		procsCtx, stopProcs := context.WithCancel(context.WithoutCancel(ctx))
		defer stopProcs()
		wg.Go(func() { gomaxprocs.Run(procsCtx, gomaxprocs.Default(runtime.GOMAXPROCS(0)), log) })
	}
	if err := eng.Run(ctx); err != nil {
		if errors.Is(err, envconf.ErrInvalid) { // a setting the broker announced it cannot carry
			return cliutil.ExitConfig, err
		}
		return cliutil.ExitError, err
	}
	return cliutil.ExitOK, nil
}

// health is /health: false with "draining" once Run's context has ended,
// "connecting" before the engine has connected, or the connections that are
// down or suspect (up, but wrote and heard nothing back for keepAlive).
func health(eng *engine.Engine, keepAlive time.Duration) func() (bool, string) {
	return func() (bool, string) {
		switch eng.Phase() {
		case engine.Draining, engine.Finished:
			return false, "draining"
		case engine.Connecting:
			return false, "connecting"
		}
		n, up, suspect := eng.Connections()
		if up != n {
			return false, fmt.Sprintf("%d of %d connections up", up, n)
		}
		if suspect > 0 {
			return false, fmt.Sprintf("%d of %d connections suspect: wrote and heard nothing back for KEEPALIVE=%v", suspect, n, keepAlive)
		}
		return true, ""
	}
}

// readiness is /ready: true once the engine is ready (engine.Ready), false
// with "starting" before and "draining" once Run's context has ended.
func readiness(eng *engine.Engine) func() (bool, string) {
	return func() (bool, string) {
		switch eng.Phase() {
		case engine.Draining, engine.Finished:
			return false, "draining"
		}
		select {
		case <-eng.Ready():
			return true, ""
		default:
			return false, "starting"
		}
	}
}
