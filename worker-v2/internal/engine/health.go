package engine

import "fmt"

// Health reports whether the engine is healthy and, when not, why: false
// with "draining" once Run's context has ended, "connecting" before the pool
// is up, or the connections that are down or suspect (up, but wrote and heard
// nothing back for KEEPALIVE). /health serves it.
func (e *Engine) Health() (bool, string) {
	if e.draining.Load() {
		return false, "draining"
	}
	p := e.pool.Load()
	if p == nil {
		return false, "connecting"
	}
	if up, n := p.Up(), p.Len(); up != n {
		return false, fmt.Sprintf("%d of %d connections up", up, n)
	}
	if s := p.Suspect(); s > 0 {
		return false, fmt.Sprintf("%d of %d connections suspect: wrote and heard nothing back for KEEPALIVE=%v", s, p.Len(), e.cfg.KeepAlive)
	}
	return true, ""
}

// Readiness reports whether the engine takes requests: true once Ready is
// closed, false with "starting" before and "draining" once Run's context has
// ended. /ready serves it.
func (e *Engine) Readiness() (bool, string) {
	if e.draining.Load() {
		return false, "draining"
	}
	select {
	case <-e.ready:
		return true, ""
	default:
		return false, "starting"
	}
}
