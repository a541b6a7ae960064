package engine

import "fmt"

func (e *Engine) health() (bool, string) {
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

func (e *Engine) readiness() (bool, string) {
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
