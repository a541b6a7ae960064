package books

import "fmt"

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

// Phase returns the run's current phase, from the marks the run loop sets
// (Start, StopSending, Finish) and the clock.
func (b *Books) Phase() Phase {
	switch {
	case b.finished.Load():
		return PhaseFinished
	case !b.started.Load():
		return PhaseConnecting
	case b.stopping.Load():
		return PhaseDraining
	}
	switch now := b.Now(); {
	case now >= b.end:
		return PhaseDraining
	case now < b.ramp:
		return PhaseRampUp
	case now < b.warmup:
		return PhaseWarmUp
	}
	return PhaseSteady
}
