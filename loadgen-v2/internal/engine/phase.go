package engine

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/metrics"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/mqttconn"
)

// Phase is where a run stands. A run goes through them in order, skipping
// those its configuration does not have (RAMP_UP, WARMUP).
type Phase int

// The phases of a run.
const (
	// PhaseConnecting: the connections are being made; nothing sent yet.
	PhaseConnecting Phase = iota
	// PhaseRampUp: sending while the virtual clients come online (RAMP_UP).
	PhaseRampUp
	// PhaseWarmUp: sending; requests intended now are left out of the
	// report (WARMUP).
	PhaseWarmUp
	// PhaseSteady: sending, every client online, every request measured.
	PhaseSteady
	// PhaseDraining: sending has ended (DURATION, a signal or StopSending);
	// outstanding requests are waited for, up to REQUEST_TIMEOUT.
	PhaseDraining
	// PhaseFinished: the connections are closed and the counts final; the
	// report is made from them (the binary then serves them for
	// METRICS_LINGER).
	PhaseFinished
)

// Phases lists every phase in order.
var Phases = []Phase{PhaseConnecting, PhaseRampUp, PhaseWarmUp, PhaseSteady, PhaseDraining, PhaseFinished}

var phaseNames = [...]string{"connecting", "ramp-up", "warm-up", "steady", "draining", "finished"}

// String returns the phase's name as metrics and JSON carry it.
func (p Phase) String() string {
	if p < 0 || int(p) >= len(phaseNames) {
		return fmt.Sprintf("phase(%d)", int(p))
	}
	return phaseNames[p]
}

// Phase returns the run's current phase. It reads the engine's clock and
// settings; PhaseFinished comes from the transport's Close (see connWatch),
// which the engine calls once the drain is over and before it builds the
// report.
func (e *Engine) Phase() Phase {
	if e.metrics != nil && e.metrics.conns.closed.Load() {
		return PhaseFinished
	}
	if !e.started.Load() {
		return PhaseConnecting
	}
	select {
	case <-e.stopSend:
		return PhaseDraining
	default:
	}
	switch now := e.now(); {
	case now >= e.stopNs:
		return PhaseDraining
	case now < e.rampNs:
		return PhaseRampUp
	case now < e.warmupNs:
		return PhaseWarmUp
	}
	return PhaseSteady
}

// RunID returns the run's id as metrics, responses and client ids carry it:
// 8 hex digits, random per run.
func (e *Engine) RunID() string { return fmt.Sprintf("%08x", e.runID) }

// connWatch counts the connection state changes of the transport and
// notices its Close (the end of the run). It sits between the engine and its
// Dialer: dialer wraps Options.OnState and the Transport returned.
type connWatch struct {
	events *metrics.ConnEvents
	closed atomic.Bool // Close returned: no handler runs, the counts are final
}

func newConnWatch(connections int) *connWatch {
	return &connWatch{events: metrics.NewConnEvents(connections)}
}

func (w *connWatch) state(i int, up bool) { w.events.State(i, up) }

// dialer returns inner with the watch installed.
func (w *connWatch) dialer(inner Dialer) Dialer {
	return func(ctx context.Context, o mqttconn.Options) (Transport, error) {
		prev := o.OnState
		o.OnState = func(i int, up bool) {
			w.state(i, up)
			if prev != nil {
				prev(i, up)
			}
		}
		t, err := inner(ctx, o)
		if err != nil {
			return nil, err
		}
		return &watchedTransport{Transport: t, w: w}, nil
	}
}

// watchedTransport is a Transport whose Close tells the watch: connections
// going down from then on are not lost, and once Close has returned the
// counts are final (no handler runs after it).
type watchedTransport struct {
	Transport
	w *connWatch
}

func (t *watchedTransport) Close() {
	t.w.events.Closing()
	t.Transport.Close()
	t.w.closed.Store(true)
}
