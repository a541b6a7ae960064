// Package engine owns worker-v2's run loop: the subscriber pool, the request
// queue, the worker goroutines and their replies, the autoscaler wiring, the
// counters and metrics (Stats, the Prometheus collectors), health and
// readiness, and the graceful drain. It serves no HTTP: package app puts
// Stats, Health, Readiness and the registry on /stats, /health, /ready and
// /metrics.
//
// Data flow. Each of CONNECTIONS MQTT connections subscribes to
// $share/SHARE_GROUP/MQTT_SUB (or MQTT_SUB with SHARED_SUBSCRIPTION=false).
// mqttconn hands every inbound message to the connection's single dispatch
// goroutine, which runs handle (intake.go): check the request for the
// correlation mode and keep what its reply needs (package reply: the
// envelope; or the MQTT 5 Response Topic and Correlation Data; or the JSON
// id and reply topic — a reply topic that is no publishable topic name, with
// a wildcard, NUL or bad UTF-8 that would make the broker close the
// connection, is malformed), count, copy into a pooled buffer (the message is
// only valid during the handler) and put {buffer, enqueue time} on a
// buffered channel of QUEUE_CAP items (queue.go). Between MIN_WORKERS and
// MAX_WORKERS goroutines (worker.go) take items, process them (package
// process), build the reply into a per-worker buffer and queue it on
// connection (worker id mod CONNECTIONS). With WRITE_LINGER=0 (the default)
// the worker writes its connection's buffer itself — in MODE=health when it
// finds the queue empty, so a backlog's replies go out in few writes, in the
// other modes after each reply — and no flusher goroutine is woken; with
// WRITE_LINGER > 0 the connection's flusher writes after that long. The
// drain is in drain.go, health and readiness in health.go. GOMAXPROCS
// follows the load (package gomaxprocs, started by package app).
//
// Queue memory. A slot is 16 bytes (a buffer pointer and the enqueue time in
// nanoseconds), allocated up front: 1.6 MB for the default QUEUE_CAP of
// 100,000. Each queued message also holds its payload copy; the queue is
// bounded in those bytes too, by QUEUE_MAX_BYTES (64 MiB by default, counted
// as the buffers' capacity): a message that would take the queue past it is
// treated like one beyond QUEUE_CAP (dropped, or waited for), except into an
// empty queue, so one message larger than the bound still passes. Expect the
// process to hold up to about twice QUEUE_MAX_BYTES for the queue under the
// default GOGC (garbage not yet collected; measured ~1.37 MB of RSS per
// queued 1 MiB request): set GOMEMLIMIT. Buffers come back to a free list of
// at most 4096 buffers of at most 4 KiB (16 MiB) when a message is replied
// to, dropped or abandoned; larger ones are left to the collector.
//
// Accounting. Every message received ends as exactly one of processed,
// dropped_full, malformed, reply_failed or abandoned, or is still queued, in
// flight, or held by a connection waiting for room (blocked, DROP_ON_FULL=false
// only):
//
//	received = processed + dropped_full + malformed + reply_failed + abandoned + queue_depth + in_flight + blocked
//
// (exact when the engine is quiet, or stuck under back-pressure; a snapshot
// taken under load can be off by the few messages moving between two
// counters while it is read). A reply counts as processed once it is in the
// connection's write buffer; if the connection then discards it unwritten
// (mqttconn's OnUnsent: the socket failed, or the pool closed without
// writing it) it moves from processed to reply_failed. Counters are striped
// atomics written by the goroutine that owns the event; the Prometheus side
// reads them with CounterFunc/GaugeFunc.
//
// Autoscaling. Every SCALE_INTERVAL the autoscaler (package autoscale)
// samples the arrival rate (received per second), the mean service time
// (worker occupancy per message, from taking it off the queue to having
// queued its reply, over the messages finished in the interval; the last
// known value when none finished), the queue length and bytes, the age of the
// oldest queued message and the busy workers, and sets the worker count. The
// oldest age is the time since the later of the enqueue time of the last
// message a worker took and the last moment a connection found the queue
// empty: an upper bound, exact to within one gap between two arrivals. In
// MODE=cpu the pool is capped at max(MIN_WORKERS, GOMAXPROCS): a CPU-bound
// worker beyond the cores adds no throughput and only stretches every
// worker's wall-clock service time, which would feed the demand estimate up
// to MAX_WORKERS.
//
// DROP_ON_FULL. With true (the default) a full queue drops the request at
// once and counts it as dropped_full: the loss is visible and the connection
// keeps reading. With false the dispatch goroutine blocks until a slot frees.
// Back-pressure then travels back through the client: paho's inbound channel
// (1024 messages) fills, its reader stops, the socket's receive window closes
// and the broker can no longer write to this connection. The broker then
// queues and, past its limits, drops — where the worker cannot count it:
//
//   - Mosquitto queues QoS 0 messages for a connected client up to
//     max_queued_messages (default 1000) and silently drops the rest
//     ($SYS/broker/messages/dropped); with $share it keeps picking the blocked
//     member round-robin, so a stalled worker instance still gets its share.
//   - EMQX queues per session up to mqtt.max_mqueue_len (default 1000) and
//     drops beyond it (the oldest first, by default);
//     force_shutdown may kill a connection whose process mailbox grows too
//     large. Its $share strategies (round_robin, random, ...) ignore backlog.
//   - mochi (the embedded broker) drops messages for a client whose outbound
//     queue (MaximumClientWritesPending; 8192 by default, 65536 in
//     internal/broker) is full, counting them in OnPublishDropped.
//
// A connection blocked for room in bytes (QUEUE_MAX_BYTES) waits the same
// way and is woken by the workers as they take messages off the queue.
//
// A block also stops paho from reading PINGRESP: if it lasts longer than the
// keepalive plus ping timeout, paho drops the connection and reconnects with
// a clean session, and the broker discards whatever it had queued. A blocked
// send is released (and counted abandoned) when shutdown gives up.
//
// Shutdown. When Run's context ends: Readiness and Health turn false
// ("draining"; /ready and /health answer 503), the autoscaler stops, every
// connection unsubscribes (the broker stops delivering; replies can still go
// out), the engine waits for stragglers already on the wire, then workers
// empty the queue and exit. Whatever is still queued or being slept on after
// SHUTDOWN_TIMEOUT is counted as abandoned and logged. Then the connections
// close (flushing buffered replies) and Run returns after every goroutine it
// started has ended.
package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	mx "github.com/mqtt-rr-bench/mqtt-rr-bench/internal/metrics"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/mqttconn"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/wire"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/worker-v2/internal/autoscale"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/worker-v2/internal/config"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/worker-v2/internal/modes"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/worker-v2/internal/reply"
)

// ErrRunTwice is returned by Run when the engine has already run.
var ErrRunTwice = errors.New("engine: Run called more than once")

// workStripes is the number of counter stripes shared by the workers (worker
// id mod workStripes); a power of two well above the core count keeps
// contention on one cache line negligible.
const workStripes = 64

// Timing of the wait for stragglers after unsubscribing.
const (
	settlePoll  = 20 * time.Millisecond
	settleQuiet = 3 // polls without a new message
	settleMax   = time.Second
)

// rateWindow is how many one-second samples rate_rps spans.
const rateWindow = 5

// connStats are the counters of one connection, written only by its
// dispatch goroutine (unsent: by the connection's writer).
type connStats struct {
	received, malformed, dropped, abandoned atomic.Uint64
	unsent                                  atomic.Uint64 // replies the connection discarded unwritten
	blocked                                 atomic.Int64  // 1 while the dispatch goroutine holds a message waiting for room
	emptyAt                                 atomic.Int64  // last time (ns since epoch) it found the queue empty when enqueuing
	_                                       [8]byte       // one cache line per connection
}

// workStats are the counters of a stripe of workers.
type workStats struct {
	processed, replyFailed, abandoned, malformed atomic.Uint64
	busy                                         atomic.Int64
	busyNs                                       atomic.Uint64 // total occupancy (take to reply queued), ns
	lastTaken                                    atomic.Int64  // enqueue time (ns since epoch) of the last item taken
	_                                            [8]byte
}

// Engine is one worker-v2 instance. Create it with New, start it with Run.
type Engine struct {
	demand   demandSample
	cfg      config.Config
	log      *slog.Logger
	met      *metrics
	popts    mqttconn.Options
	procOpts modes.Options
	rules    reply.Rules // what a request needs and what its reply is

	epoch      time.Time    // origin of item.enqueued
	clock      func() int64 // nanoseconds since epoch (monotonic); a test may step it
	queue      chan item
	queueBytes atomic.Int64  // sum of item.size() over the queued items
	room       chan struct{} // a worker took an item: blocked connections retry
	roomWait   atomic.Int32  // connections waiting on room
	maxWorkers int           // the pool's upper bound: MAX_WORKERS, capped in MODE=cpu
	sampled    atomic.Pointer[loadSample]
	quit       chan struct{} // scale-down tokens, one per worker to stop
	drain      chan struct{} // closed: workers empty the queue, then exit
	hard       chan struct{} // closed: stop now, abandon what is left
	hardO      sync.Once

	conns    []connStats
	work     [workStripes]workStats
	leftover atomic.Uint64 // abandoned in the queue at the end

	mu     sync.Mutex // guards target, nextID and worker spawning
	target int
	nextID int
	live   atomic.Int64
	wg     sync.WaitGroup // worker goroutines

	scaler   *autoscale.Scaler
	pool     atomic.Pointer[mqttconn.Pool]
	ready    chan struct{}
	started  atomic.Bool
	draining atomic.Bool
	finished atomic.Bool // the queue is done and the connections closed

	connEvents *mx.ConnEvents

	rateMu      sync.Mutex
	rateSamples []rateSample // ring of the last rateWindow+1 samples

	replyWarn rate.Sometimes // the reply-failure log, at most every 5 s
}

type rateSample struct {
	t time.Time
	n uint64
}

// New checks cfg and builds an engine whose metrics are registered on reg
// (nil: a private registry). Configuration errors wrap envconf.ErrInvalid.
func New(cfg *config.Config, log *slog.Logger, reg prometheus.Registerer) (*Engine, error) {
	c := *cfg
	if err := c.Check(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	e := &Engine{
		cfg:        c,
		log:        log,
		epoch:      time.Now(),
		queue:      make(chan item, c.QueueCap),
		room:       make(chan struct{}, c.Connections),
		maxWorkers: workerCap(&c),
		quit:       make(chan struct{}, c.MaxWorkers),
		drain:      make(chan struct{}),
		hard:       make(chan struct{}),
		conns:      make([]connStats, c.Connections),
		connEvents: mx.NewConnEvents(c.Connections),
		ready:      make(chan struct{}),
		replyWarn:  rate.Sometimes{Interval: 5 * time.Second},
		procOpts: modes.Options{
			Mode:       c.Mode,
			Sleep:      c.SleepDuration(),
			Jitter:     c.SleepJitter(),
			Iterations: c.CPUIterations,
		},
	}
	if _, err := modes.New(e.procOpts, 0); err != nil {
		return nil, err
	}
	e.clock = func() int64 { return int64(time.Since(e.epoch)) }
	pr := c.Protocol()
	e.rules = reply.Rules{Mode: pr.Correlation, IDField: pr.IDField, ReplyToField: c.ReplyTo, Template: pr.Template,
		Filler: bytes.Repeat([]byte{'x'}, c.ResponseBytes)}
	filter := c.Sub
	if c.Shared {
		filter = wire.SharedFilter(c.ShareGroup, c.Sub)
	}
	e.popts = mqttconn.Options{
		Broker:          c.Broker,
		ClientIDPrefix:  c.ClientIDPrefix,
		Connections:     c.Connections,
		QoS:             byte(c.QoS),
		Subscriptions:   func(int) []string { return []string{filter} },
		ProtocolVersion: pr.Version,
		OnMessage:       e.handle,
		OnUnsent:        e.onUnsent,
		OnState:         e.connEvents.State,
		Linger:          c.WriteLinger,
		Logger:          log,
		KeepAlive:       c.KeepAlive,
	}
	if err := c.Security.Apply(&e.popts); err != nil {
		return nil, err
	}
	policy := autoscale.Policy{
		Min: c.MinWorkers, Max: e.maxWorkers,
		Up: c.ScaleUp, Down: c.ScaleDown,
		Target:     c.ScaleTarget,
		MaxWait:    c.ScaleMaxWait,
		DownWindow: c.ScaleDownWindow,
	}
	e.scaler = autoscale.New(policy, c.ScaleInterval, e.observe, e.scaleTo)

	e.met = newMetrics(e)
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	if err := e.met.Register(reg); err != nil {
		return nil, err
	}
	return e, nil
}

// Ready is closed once the engine is connected, subscribed and its workers
// are running.
func (e *Engine) Ready() <-chan struct{} { return e.ready }

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

	if !e.cfg.Shared {
		e.log.Warn("SHARED_SUBSCRIPTION=false: plain subscription, every worker instance receives every request", "filter", e.cfg.Sub)
	}

	pool, err := mqttconn.Dial(ctx, e.popts)
	if err != nil {
		if ctx.Err() != nil {
			e.log.Info("stopped while connecting")
			return nil
		}
		return fmt.Errorf("worker: %w", err)
	}
	e.pool.Store(pool)
	e.scaleTo(e.cfg.MinWorkers)
	e.recordRate(time.Now())
	// The autoscaler's first sample measures from here (nothing received
	// yet), so it already sees the arrivals of its first interval.
	e.demand.at = time.Now()
	scaleCtx, stopScale := context.WithCancel(bgCtx)
	var scaling sync.WaitGroup
	scaling.Go(func() { e.scaler.Run(scaleCtx) })
	bg.Go(func() { e.sampleRate(bgCtx) })
	close(e.ready)
	e.log.Info("worker running",
		"broker", e.cfg.Broker, "filter", e.popts.Subscriptions(0)[0], "connections", pool.Len(),
		"mode", e.cfg.Mode, "workers", e.cfg.MinWorkers, "max_workers", e.maxWorkers,
		"queue_cap", e.cfg.QueueCap, "queue_max_bytes", e.cfg.QueueMaxBytes, "drop_on_full", e.cfg.DropOnFull,
		"scale_max_wait_seconds", e.cfg.ScaleMaxWait.Seconds(), "scale_down_window_seconds", e.cfg.ScaleDownWindow.Seconds())
	if e.maxWorkers < e.cfg.MaxWorkers {
		e.log.Info("MODE=cpu: pool capped at max(MIN_WORKERS, GOMAXPROCS); more CPU-bound workers than cores add no throughput",
			"max_workers", e.maxWorkers, "MAX_WORKERS", e.cfg.MaxWorkers, "gomaxprocs", runtime.GOMAXPROCS(0))
	}

	<-ctx.Done()
	e.draining.Store(true)
	stopScale()
	scaling.Wait()
	e.connEvents.Closing() // unsubscribing and closing are not losses
	e.shutdown(pool)
	e.finished.Store(true)
	return nil
}

// workerCap returns the pool's upper bound: MAX_WORKERS, and in MODE=cpu at
// most max(MIN_WORKERS, GOMAXPROCS).
func workerCap(c *config.Config) int {
	if c.Mode != config.ModeCPU {
		return c.MaxWorkers
	}
	return min(c.MaxWorkers, max(c.MinWorkers, runtime.GOMAXPROCS(0)))
}
