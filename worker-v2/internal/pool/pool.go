// Package pool owns worker-v2's worker goroutines: how many run (ScaleTo,
// the autoscaler's lever), what each does with a queued request (process it
// in the configured mode, build the reply, publish it on its connection),
// how they stop (scale-down tokens, the drain, the abort), and the counters
// and latency histograms they keep.
//
// Worker i publishes on connection i mod CONNECTIONS, or, while that one is
// down, on the next connection that is up. With WRITE_LINGER=0 (SelfFlush)
// the worker writes its connection's buffer itself — in MODE=health when it
// finds the queue empty, so a backlog's replies go out in few writes, in the
// other modes after each reply — and no flusher goroutine is woken; with
// WRITE_LINGER > 0 the connection's flusher writes after that long.
//
// A reply counts as processed once it is in the connection's write buffer;
// if the connection then discards it unwritten (Unsent, mqttconn's
// OnUnsent: the socket failed, or the transport closed without writing it)
// it moves from processed to reply_failed. Counters are striped atomics
// written by the goroutine that owns the event; the queue wait and the
// processing time go to HDR recorders striped by worker (package latency),
// read when scraped.
package pool

import (
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"golang.org/x/sys/cpu"
	"golang.org/x/time/rate"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/latency"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/mqttconn"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/wire"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/worker-v2/internal/intake"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/worker-v2/internal/modes"
)

// Stripes: counterStripes counter stripes shared by the workers (worker id
// mod counterStripes), a power of two well above the core count, so
// contention on one cache line stays negligible; latencyStripes HDR
// histograms per recorder (about 190 KB each), enough for the workers that
// run at once on the cores.
const (
	counterStripes = 64
	latencyStripes = 8
)

// stripe holds the counters of the workers whose id is the stripe's index
// mod counterStripes.
type stripe struct {
	processed, replyFailed, abandoned atomic.Uint64
	busy                              atomic.Int64
	busyNs                            atomic.Uint64 // total occupancy (take to reply queued), ns
	lastTaken                         atomic.Int64  // enqueue time of the last item taken
	_                                 cpu.CacheLinePad
}

// unsentCount counts the replies one connection discarded unwritten.
type unsentCount struct {
	n atomic.Uint64
	_ cpu.CacheLinePad
}

// Options configure a Pool.
type Options struct {
	Processing modes.Options  // MODE; a valid mode (config.Validate checks it)
	Rules      wire.Responder // what a reply is
	// MaxWorkers is the most workers ScaleTo is asked for.
	MaxWorkers int
	// Connections is the transport's connection count (Unsent's conn range).
	Connections int
	// SelfFlush (WRITE_LINGER=0): workers write their connection's buffer
	// themselves; else they publish and the connection's flusher writes.
	SelfFlush bool
	// Clock returns the time in nanoseconds, the clock the intake stamps
	// items with.
	Clock func() int64
	Log   *slog.Logger
}

// Pool is the set of worker goroutines taking items off one queue.
type Pool struct {
	queue      *intake.Queue
	processing modes.Options
	rules      wire.Responder
	selfFlush  bool
	lazy       bool // MODE=health: flush once the queue is empty
	clock      func() int64
	log        *slog.Logger

	quit  chan struct{} // scale-down tokens, one per worker to stop
	drain chan struct{} // closed by Stop: workers empty the queue, then exit
	abort chan struct{} // closed by Abort: stop now, abandon what is left
	once  sync.Once

	mu        sync.Mutex // guards target, nextID, transport and spawning
	target    int
	nextID    int
	transport mqttconn.Transport
	live      atomic.Int64
	wg        sync.WaitGroup

	stripes           [counterStripes]stripe
	unsent            []unsentCount
	queueWait, timing *latency.Recorder
	replyWarn         rate.Sometimes // the reply-failure log, at most every 5 s
}

// New returns a pool without workers that will take items off q.
func New(q *intake.Queue, o Options) *Pool {
	stripes := min(max(o.MaxWorkers, 1), latencyStripes)
	return &Pool{
		queue:      q,
		processing: o.Processing,
		rules:      o.Rules,
		selfFlush:  o.SelfFlush,
		lazy:       o.Processing.Mode == modes.Health,
		clock:      o.Clock,
		log:        o.Log,
		quit:       make(chan struct{}, max(o.MaxWorkers, 1)),
		drain:      make(chan struct{}),
		abort:      make(chan struct{}),
		unsent:     make([]unsentCount, max(o.Connections, 1)),
		queueWait:  latency.NewRecorder(stripes),
		timing:     latency.NewRecorder(stripes),
		replyWarn:  rate.Sometimes{Interval: 5 * time.Second},
	}
}

// Start gives the pool its transport and starts n workers.
func (p *Pool) Start(t mqttconn.Transport, n int) {
	p.mu.Lock()
	p.transport = t
	p.mu.Unlock()
	p.ScaleTo(n)
}

// ScaleTo sets the number of workers to n (after Start): it spawns workers
// (first taking back stop tokens no worker has taken yet) or posts stop
// tokens, which idle workers take. A worker never drops an item it holds.
func (p *Pool) ScaleTo(n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.target != 0 && n != p.target {
		p.log.Info("scaling workers", "from", p.target, "to", n, "queue_depth", p.queue.Len())
	}
	for p.target < n {
		select {
		case <-p.quit: // a worker about to stop stays instead
		default:
			p.spawn()
		}
		p.target++
	}
	for p.target > n {
		p.quit <- struct{}{} // capacity MaxWorkers ≥ pending tokens: never blocks
		p.target--
	}
}

// spawn starts one worker; p.mu is held.
func (p *Pool) spawn() {
	w := p.newWorker(p.nextID)
	p.nextID++
	p.live.Add(1)
	p.wg.Go(w.run)
}

// newWorker returns the state of worker id, which replies on connection id
// mod Len.
func (p *Pool) newWorker(id int) *worker {
	home := id % p.transport.Len()
	proc, _ := modes.New(p.processing, rand.Uint64()) // a valid mode: see Options
	return &worker{
		p:       p,
		conn:    p.transport.Conn(home),
		home:    home,
		proc:    proc,
		st:      &p.stripes[id%counterStripes],
		latency: id % latencyStripes,
		buf:     make([]byte, 0, wire.ResponseSize),
	}
}

// Stop makes every worker empty the queue and exit; the channel it returns
// is closed once they all have. Call it once.
func (p *Pool) Stop() <-chan struct{} {
	close(p.drain)
	done := make(chan struct{})
	go func() {
		p.wg.Wait()
		close(done)
	}()
	return done
}

// Abort makes every worker stop now: one that is sleeping (MODE=sleep)
// abandons its request, none takes another. Idempotent.
func (p *Pool) Abort() { p.once.Do(func() { close(p.abort) }) }

// Unsent is mqttconn's OnUnsent: connection conn discarded, unwritten, a
// reply counted processed when it entered the write buffer. It runs on the
// connection's writer (the workers only publish replies).
func (p *Pool) Unsent(conn int, _ *mqttconn.Message) { p.unsent[conn].n.Add(1) }

// Target returns the worker count last asked for (ScaleTo).
func (p *Pool) Target() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.target
}

// Live returns the worker goroutines running.
func (p *Pool) Live() int { return int(p.live.Load()) }

func (p *Pool) sum(f func(*stripe) uint64) uint64 {
	var n uint64
	for i := range p.stripes {
		n += f(&p.stripes[i])
	}
	return n
}

func (p *Pool) unsentTotal() uint64 {
	var n uint64
	for i := range p.unsent {
		n += p.unsent[i].n.Load()
	}
	return n
}

// Processed returns the replies that entered a write buffer minus those a
// connection then discarded unwritten (they are reply_failed).
func (p *Pool) Processed() uint64 {
	done, lost := p.sum(func(s *stripe) uint64 { return s.processed.Load() }), p.unsentTotal()
	if lost > done { // a discard counted before its reply (transient)
		return 0
	}
	return done - lost
}

// ReplyFailed returns the replies that could not be queued on a connection
// or that a connection discarded unwritten.
func (p *Pool) ReplyFailed() uint64 {
	return p.sum(func(s *stripe) uint64 { return s.replyFailed.Load() }) + p.unsentTotal()
}

// Abandoned returns the requests whose processing Abort cut short.
func (p *Pool) Abandoned() uint64 {
	return p.sum(func(s *stripe) uint64 { return s.abandoned.Load() })
}

// InFlight returns the requests a worker is processing.
func (p *Pool) InFlight() int {
	var n int64
	for i := range p.stripes {
		n += p.stripes[i].busy.Load()
	}
	return int(max(n, 0))
}

// Occupancy returns the requests finished (replied or failed, whatever
// became of the reply afterwards) and the total time workers were occupied
// by them, from taking each off the queue to having queued its reply. A
// worker adds its occupancy before counting the request, so read finished
// first: every request it counts has its time in busy.
func (p *Pool) Occupancy() (finished uint64, busy time.Duration) {
	finished = p.sum(func(s *stripe) uint64 { return s.processed.Load() + s.replyFailed.Load() })
	return finished, time.Duration(p.sum(func(s *stripe) uint64 { return s.busyNs.Load() }))
}

// LastTaken returns the enqueue time of the last item a worker took: every
// item still queued arrived later.
func (p *Pool) LastTaken() int64 {
	var t int64
	for i := range p.stripes {
		t = max(t, p.stripes[i].lastTaken.Load())
	}
	return t
}

// QueueWait returns the histogram (µs) of the time requests waited in the
// queue before a worker took them.
func (p *Pool) QueueWait() *hdrhistogram.Histogram { return p.queueWait.Total() }

// Processing returns the histogram (µs) of the time workers spent
// processing requests (MODE), replies apart.
func (p *Pool) Processing() *hdrhistogram.Histogram { return p.timing.Total() }
