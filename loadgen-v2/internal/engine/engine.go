// Package engine is loadgen-v2's run: it ties the packages of one run
// together and owns nothing of its own logic. It builds the schedule and the
// pending table, dials the transport with the books' handlers, starts the
// books' clock, runs the dispatcher until sending ends and the drain is
// over, and makes the report from the final books; the live view and the
// metrics read the books meanwhile.
//
//	schedule → dispatch → wire → mqttconn (requests)
//	mqttconn → books → latency → report (responses)
package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/cputime"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/mqttconn"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/loadgen-v2/internal/books"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/loadgen-v2/internal/claim"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/loadgen-v2/internal/config"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/loadgen-v2/internal/dispatch"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/loadgen-v2/internal/live"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/loadgen-v2/internal/metrics"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/loadgen-v2/internal/pending"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/loadgen-v2/internal/report"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/loadgen-v2/internal/schedule"
)

// Engine runs one loadgen instance.
type Engine struct {
	res   *config.Resolved
	log   *slog.Logger
	dial  mqttconn.Dialer
	wait  dispatch.Waiter // nil: dispatch.PreciseWaiter; tests under synctest set TimerWait
	sched *schedule.Schedule
	table *pending.Table
	books *books.Books
	live  *live.View

	transport atomic.Pointer[mqttconn.Transport] // set once dialled, for observers
	final     atomic.Pointer[report.Report]      // set once the report is made, for observers
	stop      chan struct{}
	stopOnce  sync.Once
	ready     chan struct{}

	// claimer claims the instance id beside the dial (takeClaim; nil:
	// INSTANCE_CLAIM=false, or a test without a broker); claims are the
	// other runs' claims it saw, for the report.
	claimer func(ctx context.Context) *claim.Claim
	claims  []string

	// startAt, when set (a fleet run), returns the common start once every
	// instance has joined: the epoch is that time. skewMS is how far the
	// run actually started from it.
	startAt func(ctx context.Context) (time.Time, error)
	skewMS  *float64
}

// New builds the engine of res: the schedule and the pending table are
// allocated here (about 12 bytes per virtual client), the metrics registered
// with reg (nil: none). Progress lines go to progress (nil: none).
func New(res *config.Resolved, log *slog.Logger, reg prometheus.Registerer, progress io.Writer) (*Engine, error) {
	if log == nil {
		log = slog.Default()
	}
	e := &Engine{res: res, log: log, dial: mqttconn.DialTransport,
		stop: make(chan struct{}), ready: make(chan struct{})}
	if res.InstanceClaim {
		e.claimer = e.takeClaim
	}
	n := res.VirtualClients
	run := min(schedule.PerTick(n, res.Interval(), dispatch.DefaultGrid), res.BatchSize)
	sched, err := schedule.New(n, res.Interval(), res.Connections, func(c int) int { return res.ConnOf(uint32(c)) }, run)
	if err != nil {
		return nil, err
	}
	sched = sched.OnGrid(dispatch.DefaultGrid)
	e.sched, e.table = sched, pending.New(n, res.MaxInflight)
	e.books = books.New(res, sched, e.table, log)
	e.live = live.New(res, e.Snapshot, &e.books.Hist, progress)
	if reg != nil {
		if err := metrics.New(res, e.Snapshot, e.books, e.final.Load).Register(reg); err != nil {
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	return e, nil
}

// BytesPerClient is the memory of the per-client state, in bytes.
func (e *Engine) BytesPerClient() int { return schedule.BytesPerClient + e.table.BytesPerClient() }

// Ready is closed when every connection is up and sending has started.
func (e *Engine) Ready() <-chan struct{} { return e.ready }

// StopSending ends the sending phase early (as DURATION would); Run then
// drains and returns the report. It is idempotent.
func (e *Engine) StopSending() {
	e.stopOnce.Do(func() {
		e.books.StopSending()
		close(e.stop)
	})
}

// stopped reports whether StopSending was called.
func (e *Engine) stopped() bool {
	select {
	case <-e.stop:
		return true
	default:
		return false
	}
}

// Snapshot returns the books now, with the transport's connection states.
func (e *Engine) Snapshot() books.Snapshot {
	s := e.books.Snapshot()
	if t := e.transport.Load(); t != nil {
		s.ConnectionsUp, s.ConnectionsSuspect = (*t).Up(), (*t).Suspect()
		s.Broker = e.broker()
	}
	return s
}

// Stats returns the live stats (live.View.Stats).
func (e *Engine) Stats() live.Stats { return e.live.Stats() }

// Distributions returns the percentile spectra of the run so far.
func (e *Engine) Distributions() live.Distributions { return e.live.Distributions() }

// Run connects, sends until DURATION elapses, ctx is cancelled or StopSending
// is called, drains outstanding requests for up to REQUEST_TIMEOUT, and
// returns the final report. Cancelling ctx is a graceful stop, not an abort.
func (e *Engine) Run(ctx context.Context) (*report.Report, error) {
	res := e.res
	opts := res.MQTT
	opts.OnMessage, opts.OnUnsent, opts.OnState, opts.Logger = e.books.OnResponse, e.books.OnUnsent, e.books.Conns.State, e.log
	opts.OnOversized = e.books.OnOversized
	// The claim is made (or skipped) before the pool connects: a clash with
	// a run already claiming this instance is told before any response
	// arrives.
	cl := e.claimInstance(ctx)
	t, err := e.dial(ctx, opts)
	if err != nil {
		e.claims = releaseClaim(cl)
		if ctx.Err() == nil && !e.stopped() {
			return nil, err
		}
		// Stopped while the connections were coming up: the report of a run
		// that sent nothing (all zero, "stopped before sending").
		e.log.Info("stopped before sending: the connections were still coming up", "err", err)
		e.books.Finish()
		return e.report(0, 0)
	}
	if err := res.CheckBroker(t.Capabilities()); err != nil {
		t.Close()
		return nil, err
	}
	e.transport.Store(&t)
	defer e.close(t)

	epoch := time.Now()
	if e.startAt != nil {
		at, err := e.startAt(ctx)
		if err != nil {
			return nil, err
		}
		if epoch, err = e.sleepUntil(ctx, at); err != nil {
			return nil, err
		}
	}
	cpuStart := cputime.Self()
	e.books.Start(epoch)
	close(e.ready)
	e.log.Info("loadgen started", "virtual_clients", res.VirtualClients, "connections", res.Connections,
		"interval_ms", res.IntervalMS, "target_rps", res.Rate(), "instance", res.InstanceID, "client_id_offset", res.Offset,
		"bytes_per_client", e.BytesPerClient(), "broker_capabilities", t.Capabilities().String())

	progCtx, stopProgress := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { e.live.Run(progCtx, epoch) })
	d := dispatch.New(dispatch.Params{Res: res, Schedule: e.sched, Table: e.table, Books: e.books, Transport: t, Wait: e.wait})
	sendEnd := time.Duration(d.Run(ctx, e.stop))
	sendingCPU := cputime.Self() - cpuStart // the drain is excluded
	stopProgress()
	wg.Wait()

	// No handler may change the counts while the report is made.
	e.close(t)
	e.claims = releaseClaim(cl)
	return e.report(sendEnd, sendingCPU)
}

// close closes the transport (connections going down from now on are not
// lost) and marks the run finished: once Close has returned no handler runs,
// so the counts are final. It is idempotent.
func (e *Engine) close(t mqttconn.Transport) {
	e.books.Conns.Closing()
	t.Close()
	e.books.Finish()
}

// broker returns the transport's capabilities record (nil before it was
// dialled).
func (e *Engine) broker() *mqttconn.Capabilities {
	t := e.transport.Load()
	if t == nil {
		return nil
	}
	c := (*t).Capabilities()
	return &c
}

// report makes the report of the finished run: sending ended at sendEnd
// (after the epoch) and cost sendingCPU.
func (e *Engine) report(sendEnd, sendingCPU time.Duration) (*report.Report, error) {
	res, f, h := e.res, e.books.Final(), &e.books.Hist
	cfg, err := json.Marshal(&res.Config)
	if err != nil {
		return nil, err
	}
	r, err := report.Build(&report.Outcome{
		Instance: res.InstanceID, Protocol: mqttconn.VersionName(res.Protocol.Version), Correlation: res.Protocol.Label,
		Measured: f.Measured, Warmup: f.Warmup, WarmupTime: res.Warmup, SendEnd: sendEnd,
		TargetRPS:      schedule.TargetRate(res.Rate(), res.RampUp, min(res.Warmup, sendEnd), sendEnd),
		VirtualClients: uint64(res.VirtualClients), ClientsFired: f.ClientsFired, Interval: res.Interval(),
		RequestBytes: f.RequestBytes, ResponseBytes: f.ResponseBytes,
		Usage:  report.ReadUsage(f.Measured.RequestsSent+f.Warmup.RequestsSent, sendingCPU),
		Config: cfg, Broker: e.broker(), InstanceClaims: e.claims,
		Hists: report.Hists{Latency: h.Latency.Total(), ScheduleLag: h.ScheduleLag.Total(),
			WorkerQueue: h.WorkerQueue.Total(), WorkerProcess: h.WorkerProcess.Total(), BrokerNetwork: h.BrokerNetwork.Total()},
		Objectives: report.Objectives{P99MS: res.SLOP99MS, MatchRate: res.SLOMatchRate, SuccessRate: res.SLOSuccess},
		Run:        e.run(sendEnd), Fleet: e.fleet(),
	})
	for _, w := range r.Warnings {
		e.log.Warn("report: " + w)
	}
	if r != nil {
		e.final.Store(r)
	}
	return r, err
}

// run identifies the run for the report: sending started at the books'
// epoch and ended sendEnd after it.
func (e *Engine) run(sendEnd time.Duration) report.Run {
	res := e.res
	host, _ := os.Hostname()
	r := report.Run{Instance: res.InstanceID, RunID: res.RunName(), Host: host, PID: os.Getpid(),
		FirstClient: uint64(res.Offset), Clients: uint64(res.VirtualClients), StartSkewMS: e.skewMS}
	if f := res.Fleet; f != nil {
		r.FleetIndex, r.ConfigDigest = &f.Index, f.Digest
	}
	if ep := e.books.Epoch(); !ep.IsZero() {
		r.Start = ep.UTC().Round(0)
		r.MeasuredStart = r.Start.Add(min(res.Warmup, sendEnd))
		r.End = r.Start.Add(sendEnd)
	}
	return r
}

// fleet returns the report's fleet section (nil for a single run).
func (e *Engine) fleet() *report.Fleet {
	if f := e.res.Fleet; f != nil {
		return &report.Fleet{ID: f.ID, Size: f.Size}
	}
	return nil
}

// SetStart makes the run wait for a common start (a fleet run): after the
// connections are up, Run calls at and counts its schedule from the time it
// returns. Set it before Run.
func (e *Engine) SetStart(at func(ctx context.Context) (time.Time, error)) { e.startAt = at }

// sleepUntil waits until the wall-clock time at and returns the epoch: at,
// carrying a monotonic clock reading (taken now, so that a wall-clock step
// during the run moves nothing). It records how late the wake-up was.
func (e *Engine) sleepUntil(ctx context.Context, at time.Time) (time.Time, error) {
	now := time.Now()
	epoch := now.Add(at.Sub(now)) // at's wall clock exactly, with a monotonic reading
	t := time.NewTimer(time.Until(epoch))
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
		return time.Time{}, fmt.Errorf("stopped while waiting for the fleet's start at %s: %w", at.UTC().Format(time.TimeOnly), ctx.Err())
	}
	skew := float64(time.Since(epoch)) / float64(time.Millisecond)
	e.skewMS = &skew
	return epoch, nil
}
