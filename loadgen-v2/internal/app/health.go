package app

import (
	"fmt"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/loadgen-v2/internal/books"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/loadgen-v2/internal/config"
)

// health is /health: healthy once every connection is up and none is
// suspect, and once the run has finished (serving its final state); else the
// reason.
func health(snapshot func() books.Snapshot, res *config.Resolved) func() (bool, string) {
	return func() (bool, string) {
		s := snapshot()
		switch {
		case s.Phase == books.PhaseFinished:
			return true, "" // done: serving the final state
		case !s.Started:
			return false, "not connected yet"
		case s.ConnectionsUp < res.Connections:
			return false, fmt.Sprintf("%d of %d connections up", s.ConnectionsUp, res.Connections)
		case s.ConnectionsSuspect > 0:
			return false, fmt.Sprintf("%d of %d connections suspect: requests written, nothing received for REQUEST_TIMEOUT=%v", s.ConnectionsSuspect, res.Connections, res.RequestTimeout)
		}
		return true, ""
	}
}
