//go:build !linux

package dispatch

// PreciseWaiter is TimerWait where Linux's timerfd is not available.
func PreciseWaiter() (Waiter, func()) { return TimerWait, func() {} }
