// Package engine runs one worker-v2 instance over an mqttconn.Transport: it
// connects, wires the request path together and starts it, drains it on
// shutdown, and answers what it is doing (Phase, Stats). It serves nothing:
// package app puts Stats, health, readiness and the metrics (package
// metrics, which read the engine) on HTTP.
//
// Request path. Each of CONNECTIONS connections subscribes to
// $share/SHARE_GROUP/MQTT_SUB (or MQTT_SUB with SHARED_SUBSCRIPTION=false)
// and runs package intake's handler for every message: check, copy, queue.
// Between MIN_WORKERS and MAX_WORKERS goroutines (package pool) take the
// queued requests, process them (package modes) and publish the replies
// (package reply) on their connection. Every SCALE_INTERVAL the autoscaler
// (package autoscale) samples the load (sample.go) and sets the worker
// count. GOMAXPROCS follows the load (package gomaxprocs, started by
// package app).
//
// Accounting. Every message received ends as exactly one of processed,
// dropped_full, malformed, refused, reply_failed or abandoned, or is still queued, in
// flight, or held by a connection waiting for room (blocked,
// DROP_ON_FULL=false only):
//
//	received = processed + dropped_full + malformed + refused + reply_failed + abandoned + queue_depth + in_flight + blocked
//
// (exact when the engine is quiet, or stuck under back-pressure; a snapshot
// taken under load can be off by the few messages moving between two
// counters while it is read).
//
// Shutdown. When Run's context ends: the phase turns draining, the
// autoscaler stops, every connection unsubscribes (the broker stops
// delivering; replies can still go out), the engine waits for stragglers
// already on the wire, then workers empty the queue and exit. Whatever is
// still queued or being slept on after SHUTDOWN_TIMEOUT is counted as
// abandoned and logged. Then the connections close (flushing buffered
// replies) and Run returns after every goroutine it started has ended.
package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/metrics"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/mqttconn"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/worker-v2/internal/autoscale"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/worker-v2/internal/config"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/worker-v2/internal/intake"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/worker-v2/internal/pool"
)

// ErrRunTwice is returned by Run when the engine has already run.
var ErrRunTwice = errors.New("engine: Run called more than once")

// Phase is what the engine is doing.
type Phase string

// Phases, in order.
const (
	Connecting Phase = "connecting" // Run has not connected yet
	Steady     Phase = "steady"     // connected: taking requests
	Draining   Phase = "draining"   // Run's context ended: emptying the queue
	Finished   Phase = "finished"   // drained and disconnected
)

// Phases lists the phases in order.
var Phases = []Phase{Connecting, Steady, Draining, Finished}

// Engine is one worker-v2 instance. Create it with New, start it with Run.
type Engine struct {
	cfg   config.Resolved
	log   *slog.Logger
	dial  mqttconn.Dialer
	epoch time.Time // origin of the clock items are stamped with

	queue  *intake.Queue
	intake *intake.Intake
	pool   *pool.Pool
	scaler *autoscale.Scaler
	links  *metrics.ConnEvents // connection ups, losses and reconnects

	transport atomic.Pointer[mqttconn.Transport] // set once connected
	ready     chan struct{}
	started   atomic.Bool
	draining  atomic.Bool
	finished  atomic.Bool // the queue is done and the connections closed
	leftover  atomic.Uint64
	oversized atomic.Uint64 // inbound messages skipped for their size

	load    loadSampler // the autoscaler's samples
	sampled atomic.Pointer[loadSample]
	rate    rateWindow // rate_rps
}

// New returns an engine for cfg (resolved from a valid configuration) that
// connects with dial (nil: mqttconn.DialTransport) and logs to log (nil:
// slog.Default()).
func New(cfg *config.Resolved, dial mqttconn.Dialer, log *slog.Logger) *Engine {
	if dial == nil {
		dial = mqttconn.DialTransport
	}
	if log == nil {
		log = slog.Default()
	}
	e := &Engine{
		cfg:   *cfg,
		log:   log,
		dial:  dial,
		epoch: time.Now(),
		links: metrics.NewConnEvents(cfg.Connections),
		ready: make(chan struct{}),
	}
	e.queue = intake.NewQueue(cfg.QueueCap, cfg.QueueMaxBytes, cfg.Connections)
	e.intake = intake.New(e.queue, cfg.Connections, cfg.Rules, cfg.DropOnFull, e.now)
	e.pool = pool.New(e.queue, pool.Options{
		Processing:  cfg.Processing,
		Rules:       cfg.Rules,
		MaxWorkers:  cfg.WorkerCap,
		Connections: cfg.Connections,
		SelfFlush:   cfg.WriteLinger == 0,
		Clock:       e.now,
		Log:         log,
	})
	e.scaler = autoscale.New(cfg.Policy, cfg.ScaleInterval, e.observe, e.pool.ScaleTo)
	return e
}

// now returns nanoseconds since the engine's epoch (monotonic).
func (e *Engine) now() int64 { return int64(time.Since(e.epoch)) }

// Ready is closed once the engine is connected, subscribed and its workers
// are running.
func (e *Engine) Ready() <-chan struct{} { return e.ready }

// Phase returns what the engine is doing.
func (e *Engine) Phase() Phase {
	switch {
	case e.finished.Load():
		return Finished
	case e.draining.Load():
		return Draining
	case e.transport.Load() != nil:
		return Steady
	}
	return Connecting
}

// Connections returns how many connections there are, how many are up
// (connected and subscribed) and how many suspect (up, but wrote and heard
// nothing back for KEEPALIVE); all 0 before Run has connected.
func (e *Engine) Connections() (n, up, suspect int) {
	t := e.transport.Load()
	if t == nil {
		return 0, 0, 0
	}
	return (*t).Len(), (*t).Up(), (*t).Suspect()
}

// ConnEvents returns the counts of the connections' state changes.
func (e *Engine) ConnEvents() *metrics.ConnEvents { return e.links }

// ScalingCounts returns the autoscaler's changes of the worker count so far,
// up and down.
func (e *Engine) ScalingCounts() (up, down uint64) { return e.scaler.Ups(), e.scaler.Downs() }

// QueueWait and Processing return the histograms (µs) of the time requests
// waited in the queue and the time workers spent processing them.
func (e *Engine) QueueWait() *hdrhistogram.Histogram  { return e.pool.QueueWait() }
func (e *Engine) Processing() *hdrhistogram.Histogram { return e.pool.Processing() }

// Run connects and processes until ctx ends, then drains (see the package
// doc) and returns after every goroutine it started has ended. It returns nil
// on a clean shutdown, including one requested while connecting, and an error
// when it cannot connect. Run may be called once.
func (e *Engine) Run(ctx context.Context) error {
	if !e.started.CompareAndSwap(false, true) {
		return ErrRunTwice
	}
	// Background goroutines (the rate sampler) outlive ctx: Stats stays
	// current during the drain.
	bgCtx, stopBg := context.WithCancel(context.WithoutCancel(ctx))
	var bg sync.WaitGroup
	defer func() {
		stopBg()
		bg.Wait()
	}()

	c := &e.cfg
	if !c.Shared {
		idx, _ := c.Index()
		e.log.Warn("SHARED_SUBSCRIPTION=false: one connection subscribes; every worker instance subscribed to a shard answers each of its requests",
			"filter", c.Sub, "filters", len(c.Filters), "worker_index", idx, "worker_count", c.WorkerCount)
	}
	opts := c.Conn
	opts.OnMessage = e.intake.Handle
	opts.OnUnsent = e.pool.Unsent
	opts.OnState = e.links.State
	opts.OnOversized = func(int, mqttconn.Oversized) { e.oversized.Add(1) }
	opts.Logger = e.log
	t, err := e.dial(ctx, opts)
	if err != nil {
		if ctx.Err() != nil {
			e.log.Info("stopped while connecting")
			return nil
		}
		return fmt.Errorf("worker: %w", explain(c, err))
	}
	if err := c.CheckBroker(t.Capabilities()); err != nil {
		t.Close()
		return fmt.Errorf("worker: %w", err)
	}
	e.transport.Store(&t)
	e.pool.Start(t, c.MinWorkers)
	e.rate.record(time.Now(), e.pool.Processed())
	// The autoscaler's first sample measures from here (nothing received
	// yet), so it already sees the arrivals of its first interval.
	e.load.at = time.Now()
	scaleCtx, stopScale := context.WithCancel(bgCtx)
	var scaling sync.WaitGroup
	scaling.Go(func() { e.scaler.Run(scaleCtx) })
	bg.Go(func() { e.sampleRate(bgCtx) })
	close(e.ready)
	e.log.Info("worker running",
		"broker", c.Broker, "filter", c.Filter, "connections", t.Len(), "protocol", t.Capabilities().Protocol,
		"mode", c.Mode, "workers", c.MinWorkers, "max_workers", c.WorkerCap,
		"queue_cap", c.QueueCap, "queue_max_bytes", c.QueueMaxBytes, "drop_on_full", c.DropOnFull,
		"scale_max_wait_seconds", c.ScaleMaxWait.Seconds(), "scale_down_window_seconds", c.ScaleDownWindow.Seconds(),
		"broker_capabilities", t.Capabilities().String())
	if c.WorkerCap < c.MaxWorkers {
		e.log.Info("MODE=cpu: pool capped at max(MIN_WORKERS, GOMAXPROCS); more CPU-bound workers than cores add no throughput",
			"max_workers", c.WorkerCap, "MAX_WORKERS", c.MaxWorkers, "gomaxprocs", runtime.GOMAXPROCS(0))
	}

	<-ctx.Done()
	e.draining.Store(true)
	stopScale()
	scaling.Wait()
	e.links.Closing() // unsubscribing and closing are not losses
	e.shutdown(t)
	e.finished.Store(true)
	return nil
}

// explain adds to a connect failure what the user can do about it: a broker
// that refuses or does not deliver the shared subscription.
func explain(c *config.Resolved, err error) error {
	if !c.Shared {
		return err
	}
	const advice = "run one worker instance with SHARED_SUBSCRIPTION=false, or split the request shards across instances " +
		"(SHARED_SUBSCRIPTION=false, WORKER_COUNT=n, WORKER_INDEX=0..n-1, SHARDS as the loadgen's)"
	switch {
	case errors.Is(err, mqttconn.ErrSharedNotDelivered):
		return fmt.Errorf("the broker accepts %s but does not deliver it: %w; %s "+
			"(if a broker ACL forbids %s#, allow it or set SHARED_SUBSCRIPTION_PROBE=false)", c.Filter, err, advice, mqttconn.ProbeTopicPrefix)
	case errors.Is(err, mqttconn.ErrSubscriptionRefused):
		return fmt.Errorf("the broker refused a shared subscription (no shared subscriptions, or an ACL): %w; %s", err, advice)
	}
	return err
}
