package engine

import (
	"context"
	"sync"
	"time"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/worker-v2/internal/autoscale"
)

// observe samples the request path for the autoscaler (on the scaler's
// goroutine): the arrival rate, the mean service time (worker occupancy per
// message, from taking it off the queue to having queued its reply, over the
// messages finished in the interval; the last known value when none
// finished), the queue length and bytes, the age of the oldest queued
// message and the busy workers.
func (e *Engine) observe() autoscale.Observation {
	o := autoscale.Observation{
		Workers:       e.pool.Target(),
		Busy:          e.pool.InFlight(),
		QueueLen:      e.queue.Len(),
		QueueCap:      e.queue.Cap(),
		QueueBytes:    e.queue.Bytes(),
		QueueMaxBytes: e.queue.MaxBytes(),
		Oldest:        e.oldestWait(),
	}
	now := time.Now()
	received := e.intake.Received()
	finished, busy := e.pool.Occupancy()
	o.Arrivals, o.Service = e.load.next(now, received, finished, busy)
	need := o.Need(e.scaler.Policy())
	e.sampled.Store(&loadSample{arrivals: o.Arrivals, service: o.Service, demand: o.Demand(), need: need})
	return o
}

// loadSampler is what observe keeps between samples (the scaler's goroutine
// only): the totals at the previous sample and the last known service time.
type loadSampler struct {
	at                 time.Time // zero: no baseline yet
	received, finished uint64
	busy               time.Duration
	service            time.Duration
}

// next returns, over the interval since the previous sample, with the totals
// received, finished and busy at now,
//
//	arrivals = Δreceived / Δt            (per second)
//	service  = Δbusy / Δfinished         (the last known value when nothing finished)
//
// and makes now the previous sample. Without a baseline (at is zero) both
// are 0.
func (l *loadSampler) next(now time.Time, received, finished uint64, busy time.Duration) (arrivals float64, service time.Duration) {
	if !l.at.IsZero() {
		if dt := now.Sub(l.at).Seconds(); dt > 0 {
			arrivals = float64(received-l.received) / dt
		}
		if n := finished - l.finished; n > 0 {
			l.service = (busy - l.busy) / time.Duration(n)
		}
	}
	l.at, l.received, l.finished, l.busy = now, received, finished, busy
	return arrivals, l.service
}

// loadSample is what the last autoscaler sample measured, for Stats.
type loadSample struct {
	arrivals float64       // requests received per second
	service  time.Duration // mean worker occupancy per message
	demand   float64       // arrivals × service: workers kept busy on average
	need     int           // what the autoscaler's rule asks for (autoscale.Observation.Need)
}

func (e *Engine) lastSample() loadSample {
	if s := e.sampled.Load(); s != nil {
		return *s
	}
	return loadSample{}
}

// oldestWait returns how long the oldest queued message has waited, 0 when
// the queue is empty. It is the time since the later of the enqueue time of
// the last message a worker took and the last moment a connection found the
// queue empty (every message still queued arrived after both): an upper
// bound, exact to within one gap between two arrivals.
func (e *Engine) oldestWait() time.Duration {
	if e.queue.Len() == 0 {
		return 0
	}
	newest := max(e.pool.LastTaken(), e.intake.LastEmpty())
	return time.Duration(max(e.now()-newest, 0))
}

// rateSpan is how many one-second samples rate_rps spans.
const rateSpan = 5

// rateWindow keeps the processed count of the last rateSpan+1 seconds.
type rateWindow struct {
	mu      sync.Mutex
	samples []rateSample
}

type rateSample struct {
	t time.Time
	n uint64
}

func (r *rateWindow) record(now time.Time, processed uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.samples) > rateSpan {
		copy(r.samples, r.samples[1:])
		r.samples = r.samples[:rateSpan]
	}
	r.samples = append(r.samples, rateSample{now, processed})
}

// perSecond returns the messages processed per second since the oldest
// sample (up to rateSpan seconds before now), with processed the count now.
func (r *rateWindow) perSecond(now time.Time, processed uint64) float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.samples) == 0 {
		return 0
	}
	old := r.samples[0]
	dt := now.Sub(old.t).Seconds()
	if dt <= 0 {
		return 0
	}
	return float64(processed-old.n) / dt
}

// sampleRate records the processed count every second until ctx ends.
func (e *Engine) sampleRate(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			e.rate.record(now, e.pool.Processed())
		}
	}
}
