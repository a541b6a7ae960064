package schedule

import "time"

// TargetRate returns the mean request rate, in requests per second, that the
// schedule offers over the measured part of a run, [from, to) after the
// epoch: from is WARMUP, to is when sending ended. rate is the full rate
// (N / I) and ramp is RAMP_UP.
//
// During a linear ramp the share of clients online at time t is t / ramp
// (position p comes online at ramp·p/N, see Online), so the schedule offers
// rate · min(t/ramp, 1) at t, and the mean over [from, to) is
//
//	rate · ( (b² − a²) / (2·ramp) + max(to, ramp) − max(from, ramp) ) / (to − from)
//
// with a = min(from, ramp) and b = min(to, ramp): the ramp's triangle between
// a and b plus the full rate after the ramp. With no ramp, or an empty
// measured part (to ≤ from: the run ended before its warm-up did), it is
// rate.
//
// The schedule fires each client a whole number of times where the linear
// ramp offers a fraction of its interval: over [from, to) the fires sent
// differ from this rate × (to − from) by fewer than 1 + ramp/(N·I) per
// client online before to.
func TargetRate(rate float64, ramp, from, to time.Duration) float64 {
	if ramp <= 0 || to <= from {
		return rate
	}
	r := float64(ramp)
	a, b := float64(min(from, ramp)), float64(min(to, ramp))
	offered := (b*b-a*a)/(2*r) + float64(max(to, ramp)-max(from, ramp))
	return rate * offered / float64(to-from)
}
