// Package app ties loadgen-v2 together for main: HTTP endpoints (health, live
// stats, metrics), the engine run, the report output and the exit status. It
// exists so main stays wiring and so the whole binary can be run in-process
// by tests.
package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/cliutil"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/envconf"
	sharedmetrics "github.com/mqtt-rr-bench/mqtt-rr-bench/internal/metrics"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/serve"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/loadgen-v2/internal/config"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/loadgen-v2/internal/engine"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/loadgen-v2/internal/metrics"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/loadgen-v2/internal/report"
)

// Run runs one loadgen of res: serves METRICS_ADDR, runs the engine until
// DURATION or ctx ends, prints the report to stdout, writes REPORT_FILE,
// keeps serving the final state for METRICS_LINGER, and returns the exit
// status (0, or 3 when an SLO is missed) and any runtime error.
//
// Endpoints: /metrics, /health (health), /stats and /debug/vars (the live
// Stats), /debug/histogram (percentile spectra of the run so far) and /report
// (the final report as JSON; 404 until the run has finished).
func Run(ctx context.Context, res *config.Resolved, log *slog.Logger, stdout, stderr io.Writer) (int, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		sharedmetrics.BuildInfo(metrics.Subsystem))
	eng, err := engine.New(res, log, reg, stderr)
	if err != nil {
		return cliutil.ExitError, err
	}
	// A signal ends sending as DURATION would; StopSending makes the phase
	// say so at once (the engine also stops on ctx itself).
	stopOnSignal := context.AfterFunc(ctx, eng.StopSending)
	defer stopOnSignal()
	fr := startFleet(ctx, res, log)
	eng.SetStart(fr.join())
	var final, merged atomic.Pointer[report.Report]
	served := "" // the endpoints' base URL, for the linger line
	httpCtx, stopHTTP := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stopHTTP()
	if res.MetricsAddr != "" {
		l, err := serve.Listen(res.MetricsAddr)
		if err != nil {
			return cliutil.ExitError, err
		}
		srv := serve.New(reg, log)
		srv.Health("/health", health(eng.Snapshot, res))
		srv.Stats("loadgen", func() any { return eng.Stats() })
		srv.JSON("/debug/histogram", func() any { return eng.Distributions() })
		srv.JSONOr404("/report", func() (any, error) {
			if r := final.Load(); r != nil {
				return r, nil
			}
			return nil, fmt.Errorf("no report yet: the run is %s", eng.Snapshot().Phase)
		})
		if fr != nil && res.Fleet.Coordinate {
			srv.JSONOr404("/fleet/report", func() (any, error) {
				if r := merged.Load(); r != nil {
					return r, nil
				}
				return nil, fmt.Errorf("no fleet report yet: the fleet %s is running (this instance's phase: %s)", res.Fleet.ID, eng.Snapshot().Phase)
			})
		}
		log.Info("metrics listening", "addr", l.Addr().String())
		served = baseURL(l.Addr())
		wg.Go(func() {
			if err := srv.Serve(httpCtx, l); err != nil {
				log.Error("metrics server", "err", err)
			}
		})
	}
	if res.CPUProfile != "" {
		f, err := os.Create(res.CPUProfile)
		if err != nil {
			return cliutil.ExitError, fmt.Errorf("CPU_PROFILE: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return cliutil.ExitError, fmt.Errorf("CPU_PROFILE: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	fmt.Fprintln(stderr, "loadgen-v2: "+res.Plan())
	rep, err := eng.Run(ctx)
	fr.finish(rep, err)
	if err != nil {
		if code, ferr := fr.refused(); code != 0 {
			return code, ferr
		}
		fr.abort()
		if errors.Is(err, envconf.ErrInvalid) { // a setting the broker announced (or the fleet) refused
			return cliutil.ExitConfig, err
		}
		return cliutil.ExitError, err
	}
	final.Store(rep)
	code, err := Emit(rep, res.ReportFile, stdout)
	if err == nil {
		code, err = fr.verdict(code, stdout, merged.Store)
	}
	if res.MetricsAddr != "" {
		linger(ctx, res.MetricsLinger, served, log, stderr)
	}
	return code, err
}

// baseURL is the http:// URL of a listener's address, "localhost" for an
// address that listens on every interface.
func baseURL(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return "http://" + a.String()
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// linger keeps the endpoints up for d after the report, so that Prometheus
// scrapes the final counts (phase finished) before the process goes away.
// A signal ends it: the first one when the run ended on its own (DURATION);
// when a signal ended the run, a second one (which exits at once, 130).
// It says so on stderr: where the report stays, how long, how to end it.
func linger(ctx context.Context, d time.Duration, url string, log *slog.Logger, stderr io.Writer) {
	if d <= 0 {
		return
	}
	end := "Ctrl-C (SIGINT, SIGTERM) ends it now"
	if ctx.Err() != nil {
		ctx = context.Background() // stopped by a signal: only a second one ends the linger
		end = "Ctrl-C again ends it now (exit 130)"
	}
	say := fmt.Sprintf("the report stays at %s/report (with /metrics, /stats) for %g s (METRICS_LINGER); %s", url, d.Seconds(), end)
	for _, l := range report.Wrap("loadgen-v2: ", strings.Fields(say), report.TextWidth) {
		fmt.Fprintln(stderr, l)
	}
	log.Info("run finished; serving the final metrics (METRICS_LINGER)", "linger_seconds", d.Seconds())
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
		log.Info("signal received: linger ended")
	}
}

// Emit prints the report, writes it as JSON to path when set, and maps the
// SLO outcome to the exit status.
func Emit(rep *report.Report, path string, stdout io.Writer) (int, error) {
	rep.WriteText(stdout)
	if path != "" {
		if err := rep.WriteJSON(path); err != nil {
			return cliutil.ExitError, err
		}
	}
	if !rep.SLO.Passed {
		return cliutil.ExitSLO, nil
	}
	return cliutil.ExitOK, nil
}

// Merge is `loadgen-v2 merge [-o merged.json] REPORT.json...`: it reads the
// JSON reports, merges them (report.Merge), prints the merged text report,
// writes the merged JSON report to -o when given, and returns the exit
// status: 0, 3 when the merged report misses an SLO (SLO_P99_MS,
// SLO_MATCH_RATE and SLO_SUCCESS_RATE apply to it), 2 for bad usage or a
// merge refused as meaningless (report.ErrRefused: nothing is written), 1
// when a report cannot be read or the output written.
func Merge(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("merge", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("o", "", "write the merged report as JSON to this file (it can be charted or merged again)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: loadgen-v2 merge [-o merged.json] REPORT.json...")
		fs.PrintDefaults()
	}
	var paths []string
	for { // flags before, between or after the files; after -- only files
		if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
			return cliutil.ExitOK
		} else if err != nil {
			return cliutil.ExitConfig
		}
		rest := fs.Args()
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			paths = append(paths, rest...)
			break
		}
		if len(rest) == 0 {
			break
		}
		paths, args = append(paths, rest[0]), rest[1:]
	}
	if len(paths) == 0 {
		fmt.Fprintln(stderr, "loadgen-v2 merge: give one or more JSON report files (REPORT_FILE of each loadgen, or its /report)")
		fs.Usage()
		return cliutil.ExitConfig
	}
	var slo struct {
		P99     float64 `envconfig:"SLO_P99_MS" default:"0"`
		Match   float64 `envconfig:"SLO_MATCH_RATE" default:"0"`
		Success float64 `envconfig:"SLO_SUCCESS_RATE" default:"0.99"`
	}
	if err := envconf.Load(&slo); err != nil {
		fmt.Fprintln(stderr, "loadgen-v2 merge:", err)
		return cliutil.ExitConfig
	}
	var rs []*report.Report
	for _, p := range paths {
		r, err := report.Read(p)
		if err != nil {
			fmt.Fprintf(stderr, "loadgen-v2 merge: %v (give the JSON reports: REPORT_FILE of each loadgen, or its /report)\n", err)
			return cliutil.ExitError
		}
		rs = append(rs, r)
	}
	m, err := report.Merge(rs, report.Objectives{P99MS: slo.P99, MatchRate: slo.Match, SuccessRate: slo.Success})
	if errors.Is(err, report.ErrRefused) {
		fmt.Fprintln(stderr, "loadgen-v2 merge:", err)
		return cliutil.ExitConfig
	}
	if err != nil {
		fmt.Fprintln(stderr, "loadgen-v2 merge:", err)
		return cliutil.ExitError
	}
	code, err := Emit(m, *out, stdout)
	if err != nil {
		fmt.Fprintln(stderr, "loadgen-v2 merge:", err)
	}
	return code
}
