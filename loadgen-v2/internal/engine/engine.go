// Package engine is loadgen-v2's run loop: it multiplexes the virtual clients
// of a schedule over a pool of MQTT connections, tracks every request in the
// pending table, matches responses, sweeps timeouts, records latency from the
// intended send time, and produces the final report.
//
// Goroutines: one scheduler (plus PUBLISH_WORKERS − 1 owners of connections,
// used only when a tick holds more than BATCH_SIZE requests; see publishers),
// one reading goroutine per connection (inside the MQTT client) running the
// response handler, and a progress reporter. Nothing scales with the number
// of virtual clients.
package engine

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/cputime"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/latency"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/mqttconn"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/wire"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/loadgen-v2/internal/config"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/loadgen-v2/internal/pending"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/loadgen-v2/internal/report"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/loadgen-v2/internal/schedule"
)

// Tick is the scheduler's resolution: it wakes at most once per Tick and
// sends every request that fell due since its last wake (catch-up). A request
// is late by at most one Tick plus the wake-up delay, and that shows in the
// round-trip latency, which is measured from the exact intended time.
const Tick = time.Millisecond

// counters of one phase (0 = warmup, 1 = measured). Every scheduled fire is
// exactly one of sent, skipped and sendFailed; every request sent ends in
// exactly one of matched and timedOut, or is still pending. firstFires counts
// the clients' first scheduled fires (clients that fired).
type counters struct {
	scheduled, sent, matched, timedOut, skipped, sendFailed atomic.Uint64
	late, duplicate, implausible, firstFires                atomic.Uint64
	_                                                       [8]uint64 // no false sharing between phases
}

// Engine runs one loadgen instance.
type Engine struct {
	cfg    *config.Config
	log    *slog.Logger
	out    io.Writer // progress lines
	sched  *schedule.Schedule
	table  *pending.Table
	dial   Dialer
	pool   Transport    // set by Run before any goroutine that uses it starts
	shared atomic.Value // the same Transport, for observers (HTTP, metrics)
	runID  uint32
	epoch  time.Time
	offset uint32
	n      uint32

	instance   []byte
	proto      *config.Protocol
	reqTopics  []string         // per shard
	respTopics [][]byte         // per shard, reply topic carried in requests
	respStr    []string         // the same, as strings (Response Topic property)
	respFilter []string         // per shard, subscription filters
	filler     []byte           // payload of CORRELATE=properties without a template
	expiry     uint32           // MQTT 5 Message Expiry Interval of requests, s
	epochMS    int64            // the epoch as Unix milliseconds ({{ts}})
	bytesIn    [8]paddedCounter // response payload bytes, striped by connection

	timeoutNs, warmupNs, rampNs, stopNs int64

	counts             [2]counters
	unknown, malformed atomic.Uint64
	bytesOut           atomic.Uint64 // request payload bytes sent (queued)
	fired              atomic.Uint64 // fires processed by the scheduler (for "unknown" detection)
	started            atomic.Bool

	lat, lag, wq, wp *latency.Recorder
	metrics          *Metrics

	stopSend chan struct{}
	stopOnce sync.Once
	readyCh  chan struct{}

	mu       sync.Mutex
	lastProg progressSnap

	cpuStart, cpuSend time.Duration // process CPU when sending started and ended

	implausibleLog rate.Sometimes // the implausible-response log, at most every 1 s
}

// New builds an engine from a validated config: the schedule and the pending
// table are allocated here (about 12 bytes per virtual client).
func New(cfg *config.Config, log *slog.Logger, reg prometheus.Registerer, progress io.Writer) (*Engine, error) {
	if log == nil {
		log = slog.Default()
	}
	n := cfg.VirtualClients
	e := &Engine{
		cfg: cfg, log: log, out: progress,
		offset:    cfg.Offset(),
		n:         uint32(n),
		instance:  []byte(cfg.InstanceID),
		timeoutNs: int64(cfg.RequestTimeout),
		warmupNs:  int64(cfg.Warmup),
		rampNs:    int64(cfg.RampUp),
		stopNs:    int64(cfg.Duration),
		stopSend:  make(chan struct{}),
		readyCh:   make(chan struct{}),
		dial:      DialPool,
	}
	if e.stopNs == 0 {
		e.stopNs = 1<<63 - 1
	}
	e.implausibleLog.Interval = time.Second
	var b [4]byte
	_, _ = rand.Read(b[:])
	e.runID = binary.BigEndian.Uint32(b[:])

	e.proto = cfg.Protocol()
	for s := range cfg.Shards {
		f := &wire.Fields{Instance: cfg.InstanceID, Shard: s}
		e.reqTopics = append(e.reqTopics, e.proto.ReqTopic.String(f))
		t := e.proto.RespTopic.String(f)
		e.respTopics = append(e.respTopics, []byte(t))
		e.respStr = append(e.respStr, t)
		e.respFilter = append(e.respFilter, t)
	}
	if e.proto.Template == nil && e.proto.Correlation == wire.Properties {
		e.filler = make([]byte, cfg.PayloadBytes)
		for i := range e.filler {
			e.filler[i] = 'x'
		}
	}
	if e.proto.Version == 5 {
		e.expiry = uint32(min((cfg.RequestTimeout+time.Second-1)/time.Second, 1<<32-1))
	}
	// Requests of one connection are grouped in runs of about one tick's worth.
	perTick := float64(n) * float64(Tick) / float64(cfg.Interval())
	run := min(max(int(perTick+0.999), 1), cfg.BatchSize)
	sched, err := schedule.New(n, cfg.Interval(), cfg.Connections, func(c int) int { return e.connOf(uint32(c)) }, run)
	if err != nil {
		return nil, err
	}
	e.sched = sched
	e.table = pending.New(n, cfg.MaxInflight)
	stripes := min(cfg.Connections, 8)
	e.lat, e.lag = latency.NewIntervalRecorder(stripes), latency.NewRecorder(min(cfg.PublishWorkers, 8))
	e.wq, e.wp = latency.NewRecorder(stripes), latency.NewRecorder(stripes)
	e.metrics = newMetrics(e)
	if reg != nil {
		if err := e.metrics.Register(reg); err != nil {
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	return e, nil
}

// shardOf returns the shard of local client i: (offset+i) mod SHARDS.
func (e *Engine) shardOf(i uint32) int { return wire.Shard(e.offset+i, e.cfg.Shards) }

// connOf returns the connection of local client i. Responses are routed by
// shard, so all clients of a shard share a connection: shard mod CONNECTIONS.
func (e *Engine) connOf(i uint32) int { return e.shardOf(i) % e.cfg.Connections }

// BytesPerClient is the memory of the per-client state, in bytes.
func (e *Engine) BytesPerClient() int { return schedule.BytesPerClient + e.table.BytesPerClient() }

// Ready is closed when every connection is up and sending has started.
func (e *Engine) Ready() <-chan struct{} { return e.readyCh }

// StopSending ends the sending phase early (as DURATION would); Run then
// drains and returns the report. It is idempotent.
func (e *Engine) StopSending() { e.stopOnce.Do(func() { close(e.stopSend) }) }

// Run connects, sends until DURATION elapses, ctx is cancelled or StopSending
// is called, drains outstanding requests for up to REQUEST_TIMEOUT, and
// returns the final report. Cancelling ctx is a graceful stop, not an abort.
func (e *Engine) Run(ctx context.Context) (*report.Report, error) {
	cfg := e.cfg
	opts := mqttconn.Options{
		Broker:          cfg.Broker,
		ClientIDPrefix:  fmt.Sprintf("lg-%s-%08x", cfg.InstanceID, e.runID),
		Connections:     cfg.Connections,
		QoS:             byte(cfg.QoS),
		ProtocolVersion: e.proto.Version,
		Subscriptions: func(j int) []string {
			if !e.proto.PerShard {
				if j == 0 {
					return e.respFilter[:1] // one response topic for all shards
				}
				return nil
			}
			var f []string
			for s := j; s < cfg.Shards; s += cfg.Connections {
				f = append(f, e.respFilter[s])
			}
			return f
		},
		OnMessage: e.onResponse,
		OnUnsent:  e.onUnsent,
		Logger:    e.log,
		KeepAlive: cfg.KeepAlive,
		// Requests went out and nothing came back for a whole request timeout.
		SuspectAfter: cfg.RequestTimeout,
		Plain:        cfg.Transport == "paho",
	}
	if err := cfg.Security.Apply(&opts); err != nil {
		return nil, err
	}
	pool, err := e.dial(ctx, opts)
	if err != nil {
		return nil, err
	}
	e.pool = pool
	e.shared.Store(pool)
	defer pool.Close()

	e.cpuStart = cputime.Process()
	e.epoch = time.Now()
	e.epochMS = e.epoch.UnixMilli()
	e.started.Store(true)
	close(e.readyCh)
	e.log.Info("loadgen started", "virtual_clients", cfg.VirtualClients, "connections", cfg.Connections,
		"interval_ms", cfg.IntervalMS, "target_rps", cfg.Rate(), "instance", cfg.InstanceID, "client_id_offset", e.offset,
		"bytes_per_client", e.BytesPerClient())

	progCtx, stopProg := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { e.progress(progCtx) })
	sendEnd := e.schedulerLoop(ctx)
	e.cpuSend = cputime.Process() // cpu while sending; the drain is excluded
	stopProg()
	wg.Wait()

	return e.finish(sendEnd)
}

// now returns nanoseconds since the epoch (monotonic).
func (e *Engine) now() int64 { return int64(time.Since(e.epoch)) }

// phaseOf returns 0 for requests intended during the warmup, else 1.
func (e *Engine) phaseOf(at int64) int {
	if at < e.warmupNs {
		return 0
	}
	return 1
}

// schedulerLoop sends the scheduled requests and sweeps timeouts until the
// sending phase ends, then keeps sweeping until nothing is pending or
// REQUEST_TIMEOUT has passed. It returns when sending ended (ns after epoch).
func (e *Engine) schedulerLoop(ctx context.Context) int64 {
	var (
		fNext, gNext uint64 // next fire to send; next fire whose deadline to check
		sending      = true
		sendEnd      int64
		timer        = time.NewTimer(time.Hour)
		pub          = newPublishers(e)
		stopSend     = e.stopSend
	)
	defer timer.Stop()
	defer pub.close()
	for {
		now := e.now()
		// Deadline checks first (fire g's request expires at time(g) + timeout),
		// so a slot whose request expires now is free for the client's next fire.
		gEnd := min(e.sched.FiresUpTo(now-e.timeoutNs), fNext)
		if gEnd > gNext {
			e.sweep(gNext, gEnd)
			gNext = gEnd
		}
		if sending {
			// Every fire due before the end is sent (late fires are
			// measured from their intended time like any other).
			upTo := now
			if now >= e.stopNs {
				sending, sendEnd, upTo = false, e.stopNs, e.stopNs-1
			}
			if fEnd := e.sched.FiresUpTo(upTo); fEnd > fNext {
				pub.send(fNext, fEnd, now)
				fNext = fEnd
				e.fired.Store(fNext)
			}
		}
		if !sending && (e.pendingNow() == 0 || gNext >= fNext || now > sendEnd+e.timeoutNs+int64(time.Second)) {
			return sendEnd
		}
		// Sleep until the next fire or deadline, but at least one Tick.
		wake := int64(1<<63 - 1)
		if sending {
			wake = min(e.sched.FireTime(fNext), e.stopNs)
		}
		if gNext < fNext {
			wake = min(wake, e.sched.FireTime(gNext)+e.timeoutNs)
		}
		if !sending {
			// Draining: look often, so the run ends as soon as nothing is pending.
			wake = min(wake, now+int64(10*time.Millisecond))
		}
		wake = max(wake, now+int64(Tick))
		timer.Reset(time.Duration(wake - now))
		stopNow := false
		select {
		case <-timer.C:
		case <-stopSend:
			stopSend = nil // nil channel: never selected again
			stopNow = true
		case <-ctx.Done():
			ctx = context.Background()
			stopNow = true
		}
		if stopNow && sending {
			// An early stop: the fires due before it are still sent.
			sending, sendEnd = false, e.now()
			if fEnd := e.sched.FiresUpTo(sendEnd - 1); fEnd > fNext {
				pub.send(fNext, fEnd, sendEnd)
				fNext = fEnd
				e.fired.Store(fNext)
			}
		}
	}
}

// onUnsent takes back a request whose frame the connection discarded
// unwritten (connection lost, or still buffered when the pool closed): it was
// counted sent when queued, and is send_failed. A request that already ended
// (expired while its frame waited) keeps its outcome.
func (e *Engine) onUnsent(_ int, m *mqttconn.Message) {
	k, ok := e.requestKey(m)
	if !ok || k.RunID != e.runID {
		return
	}
	client := k.ClientID - e.offset
	if client >= e.n || !e.table.Release(client, k.Seq) {
		return
	}
	c := &e.counts[e.phaseOf(e.sched.TimeOf(client, k.Seq))]
	c.sent.Add(^uint64(0)) // −1
	c.sendFailed.Add(1)
	e.bytesOut.Add(-uint64(len(m.Payload)))
}

// requestKey finds the key of one of our own requests.
func (e *Engine) requestKey(m *mqttconn.Message) (wire.Key, bool) {
	switch e.proto.Correlation {
	case wire.Properties:
		k, err := wire.DecodeCorrelation(m.CorrelationData)
		return k, err == nil
	case wire.JSON:
		v, ok := wire.JSONField(m.Payload, e.proto.JSONField)
		if !ok {
			return wire.Key{}, false
		}
		k, err := wire.ParseID(v)
		return k, err == nil
	}
	var r wire.Request
	if wire.DecodeRequest(m.Payload, &r) != nil {
		return wire.Key{}, false
	}
	return wire.Key{RunID: r.RunID, ClientID: r.ClientID, Seq: r.Seq}, true
}

// sweep checks the deadlines of fires [a, b): every outstanding request of
// the fire's client with a sequence number up to the fire's has expired.
func (e *Engine) sweep(a, b uint64) {
	for g := a; g < b; g++ {
		client, seq, _ := e.sched.Fire(g)
		e.table.Expire(client, seq, func(s uint32) {
			e.counts[e.phaseOf(e.sched.TimeOf(client, s))].timedOut.Add(1)
		})
	}
}

// onResponse matches one response. It runs on a connection's dispatch
// goroutine and never blocks.
func (e *Engine) onResponse(conn int, m *mqttconn.Message) {
	e.bytesIn[conn&7].n.Add(uint64(len(m.Payload)))
	var r wire.Response // worker timings: the envelope only
	var k wire.Key
	switch e.proto.Correlation {
	case wire.Envelope:
		if err := wire.DecodeResponse(m.Payload, &r); err != nil {
			e.malformed.Add(1)
			return
		}
		k = wire.Key{RunID: r.RunID, ClientID: r.ClientID, Seq: r.Seq}
	case wire.Properties:
		var err error
		if k, err = wire.DecodeCorrelation(m.CorrelationData); err != nil {
			e.malformed.Add(1) // missing, short or foreign Correlation Data
			return
		}
	case wire.JSON:
		v, ok := wire.JSONField(m.Payload, e.proto.JSONField)
		if !ok {
			e.malformed.Add(1) // not JSON, or no such member
			return
		}
		var err error
		if k, err = wire.ParseID(v); err != nil {
			e.malformed.Add(1)
			return
		}
	}
	client := k.ClientID - e.offset
	if !e.started.Load() || k.RunID != e.runID || client >= e.n {
		e.unknown.Add(1) // before the start: e.epoch is not set yet
		return
	}
	now := e.now()
	at := e.sched.TimeOf(client, k.Seq)
	if e.proto.Correlation == wire.Envelope && r.Intended != at {
		e.unknown.Add(1)
		return
	}
	c := &e.counts[e.phaseOf(at)]
	rtt := now - at
	// The worker's queue wait and processing happen inside the round trip: a
	// response claiming more was not made by a worker for this request
	// (forged, or a foreign responder on our response topics). worker-v2's
	// two stamps are disjoint readings of one clock, truncated to µs, so a
	// real response never claims more than the round trip; the slack only
	// keeps a responder that rounds its stamps up from being flagged.
	if claimed := (int64(r.QueueUS) + int64(r.ProcessUS)) * int64(time.Microsecond); claimed > rtt+int64(implausibleSlack) {
		c.implausible.Add(1)
		e.warnImplausible(client, k.Seq, r.QueueUS, r.ProcessUS, rtt)
		return
	}
	if e.table.Match(client, k.Seq) {
		if rtt > e.timeoutNs {
			// Arrived after its deadline, before the sweep saw it: timed out.
			c.timedOut.Add(1)
			c.late.Add(1)
			return
		}
		c.matched.Add(1)
		if at >= e.warmupNs {
			d := time.Duration(rtt)
			e.lat.Record(conn, d)
			if e.proto.Correlation == wire.Envelope {
				e.wq.Record(conn, time.Duration(r.QueueUS)*time.Microsecond)
				e.wp.Record(conn, time.Duration(r.ProcessUS)*time.Microsecond)
			}
		}
		return
	}
	switch {
	case uint64(k.Seq)*uint64(e.n) >= e.fired.Load()+uint64(e.n):
		e.unknown.Add(1) // a sequence number the schedule has not reached
	case rtt > e.timeoutNs:
		c.late.Add(1)
	default:
		c.duplicate.Add(1)
	}
}

// implausibleSlack is how much worker-stamped time may exceed the measured
// round trip before a response counts implausible. A forgery that replays
// or invents stamps claims far more; warnImplausible logs what was claimed.
// (Flags of real responses seen earlier, about one in 10^4..10^6 under
// load, were worker-v2 counting the time between two clock readings in both
// stamps; with one reading, 170,000 responses of a starved worker claimed
// nothing beyond their round trips even with no slack at all.)
const implausibleSlack = time.Millisecond

// warnImplausible logs an implausible response, at most once a second: what
// the responder claimed (queue wait and processing, µs) against the round
// trip measured here (ns).
func (e *Engine) warnImplausible(client, seq, queueUS, processUS uint32, rtt int64) {
	e.implausibleLog.Do(func() {
		e.log.Warn("implausible response: the responder claims more time than the whole round trip (forged, or a foreign responder; logged at most every 1s, see implausible)",
			"client", client, "seq", seq, "queue_ms", float64(queueUS)/1e3, "process_ms", float64(processUS)/1e3, "round_trip_ms", float64(rtt)/1e6)
	})
}

// paddedCounter is a counter on its own cache line.
type paddedCounter struct {
	n atomic.Uint64
	_ [56]byte
}

func (e *Engine) responseBytes() uint64 {
	var n uint64
	for i := range e.bytesIn {
		n += e.bytesIn[i].n.Load()
	}
	return n
}

func (e *Engine) connsUp() int {
	if p, ok := e.shared.Load().(Transport); ok {
		return p.Up()
	}
	return 0
}

func (e *Engine) connsSuspect() int {
	if p, ok := e.shared.Load().(Transport); ok {
		return p.Suspect()
	}
	return 0
}

// pendingNow returns sent − matched − timed out over both phases.
func (e *Engine) pendingNow() int64 {
	var p int64
	for i := range e.counts {
		c := &e.counts[i]
		p += int64(c.sent.Load()) - int64(c.matched.Load()) - int64(c.timedOut.Load())
	}
	return max(p, 0)
}

func (e *Engine) snapshot(i int) report.Counts {
	c := &e.counts[i]
	return report.Counts{
		Scheduled:        c.scheduled.Load(),
		RequestsSent:     c.sent.Load(),
		ResponsesMatched: c.matched.Load(),
		Timeouts:         c.timedOut.Load(),
		Skipped:          c.skipped.Load(),
		SendFailed:       c.sendFailed.Load(),
		Late:             c.late.Load(),
		Duplicate:        c.duplicate.Load(),
		Implausible:      c.implausible.Load(),
	}
}

// finish builds the report after the drain: requests still outstanding are
// counted (a full scan of the pending table), so the identity
// sent == matched + timed out + still pending holds exactly.
func (e *Engine) finish(sendEnd int64) (*report.Report, error) {
	// Stop the handlers from changing the counts while the report is built.
	e.pool.Close()
	var still [2]uint64
	e.table.Outstanding(func(client, seq uint32) {
		still[e.phaseOf(e.sched.TimeOf(client, seq))]++
	})
	r := &report.Report{Instances: []string{e.cfg.InstanceID}, Protocol: mqttconn.VersionName(e.proto.Version), Correlation: e.proto.Correlation.String()}
	if e.proto.Correlation == wire.JSON {
		r.Correlation = "json:" + e.proto.JSONField
	}
	r.Counts = e.snapshot(1)
	r.RequestBytes, r.ResponseBytes = e.bytesOut.Load(), e.responseBytes()
	if sendEnd > 0 {
		secs := time.Duration(sendEnd).Seconds()
		r.RequestBytesPerSec, r.ResponseBytesPerSec = float64(r.RequestBytes)/secs, float64(r.ResponseBytes)/secs
	}
	r.VirtualClients = uint64(e.n)
	r.IntervalSeconds = e.cfg.Interval().Seconds()
	r.ClientsFired = e.counts[0].firstFires.Load() + e.counts[1].firstFires.Load()
	r.StillPending = still[1]
	r.Unknown = e.unknown.Load()
	r.Malformed = e.malformed.Load()
	if e.warmupNs > 0 {
		w := e.snapshot(0)
		w.StillPending = still[0]
		r.Warmup = &w
	}
	measured := sendEnd - min(e.warmupNs, sendEnd)
	r.DurationSeconds = time.Duration(measured).Seconds()
	r.TargetRPS = schedule.TargetRate(e.cfg.Rate(), e.cfg.RampUp, time.Duration(sendEnd-measured), time.Duration(sendEnd))
	r.Process = processUsage(r.RequestsSent+e.snapshot(0).RequestsSent, e.cpuSend-e.cpuStart)
	cfgJSON, err := json.Marshal(e.cfg)
	if err != nil {
		return nil, err
	}
	r.Config = cfgJSON
	err = r.Finish(report.Hists{
		Latency: e.lat.Total(), ScheduleLag: e.lag.Total(),
		WorkerQueue: e.wq.Total(), WorkerProcess: e.wp.Total(),
	}, report.Objectives{P99MS: e.cfg.SLOP99MS, MatchRate: e.cfg.SLOMatchRate, SuccessRate: e.cfg.SLOSuccess})
	for _, w := range r.Warnings {
		e.log.Warn("report: " + w)
	}
	return r, err
}

// processUsage reads this process's CPU time and peak RSS (getrusage);
// sendingCPU is the CPU spent while sending (start-up and drain excluded).
func processUsage(requests uint64, sendingCPU time.Duration) *report.Process {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return nil
	}
	p := &report.Process{
		CPUUserSeconds:   time.Duration(ru.Utime.Nano()).Seconds(),
		CPUSystemSeconds: time.Duration(ru.Stime.Nano()).Seconds(),
		MaxRSSMB:         float64(ru.Maxrss) / 1024, // Linux: KiB
	}
	if requests > 0 {
		p.CPUMicrosPerRequest = (p.CPUUserSeconds + p.CPUSystemSeconds) * 1e6 / float64(requests)
		p.SendingCPUMicrosPerRequest = float64(sendingCPU.Microseconds()) / float64(requests)
	}
	return p
}
