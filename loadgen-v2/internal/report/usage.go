package report

import (
	"syscall"
	"time"
)

// ProcessUsage is the resource use of the loadgen process over the whole run
// (start-up and drain included), from getrusage.
type ProcessUsage struct {
	CPUUserSeconds   float64 `json:"cpu_user_s"`
	CPUSystemSeconds float64 `json:"cpu_system_s"`
	MaxRSSMB         float64 `json:"max_rss_mb"`
	// CPUMicrosPerRequest is (user + system) CPU per request sent, µs: the
	// loadgen's own cost of a round trip (publish, response, accounting).
	CPUMicrosPerRequest float64 `json:"cpu_us_per_request"`
	// SendingCPUMicrosPerRequest is the same over the sending phase only
	// (connecting, start-up and the final drain excluded): the steady-state
	// cost of a round trip.
	SendingCPUMicrosPerRequest float64 `json:"sending_cpu_us_per_request"`
}

// ReadUsage reads this process's CPU time and peak RSS (getrusage) for a
// run that sent requests (both phases) and spent sendingCPU while sending;
// nil when the kernel does not say.
func ReadUsage(requests uint64, sendingCPU time.Duration) *ProcessUsage {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return nil
	}
	u := &ProcessUsage{
		CPUUserSeconds:   time.Duration(ru.Utime.Nano()).Seconds(),
		CPUSystemSeconds: time.Duration(ru.Stime.Nano()).Seconds(),
		MaxRSSMB:         float64(ru.Maxrss) / 1024, // Linux: KiB
	}
	if requests > 0 {
		u.CPUMicrosPerRequest = (u.CPUUserSeconds + u.CPUSystemSeconds) * 1e6 / float64(requests)
		u.SendingCPUMicrosPerRequest = float64(sendingCPU.Microseconds()) / float64(requests)
	}
	return u
}
