// Package cputime reads how much CPU this process has used (getrusage), for
// the loadgen's CPU per request and the worker's GOMAXPROCS policy.
package cputime

import (
	"syscall"
	"time"
)

// Self returns the CPU time this process has used so far, user + system
// (all its threads; getrusage RUSAGE_SELF), or 0 when the kernel does not
// say.
func Self() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
