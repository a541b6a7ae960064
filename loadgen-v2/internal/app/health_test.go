package app

import (
	"testing"
	"time"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/loadgen-v2/internal/books"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/loadgen-v2/internal/config"
)

func TestHealth(t *testing.T) {
	res := &config.Resolved{Config: config.Config{Connections: 4, RequestTimeout: 10 * time.Second}}
	for _, tc := range []struct {
		name string
		snap books.Snapshot
		ok   bool
		why  string
	}{
		{"connecting", books.Snapshot{Phase: books.PhaseConnecting}, false, "not connected yet"},
		{"a connection down", books.Snapshot{Phase: books.PhaseSteady, Started: true, ConnectionsUp: 3}, false, "3 of 4 connections up"},
		{"a connection suspect", books.Snapshot{Phase: books.PhaseSteady, Started: true, ConnectionsUp: 4, ConnectionsSuspect: 1}, false,
			"1 of 4 connections suspect: requests written, nothing received for REQUEST_TIMEOUT=10s"},
		{"sending", books.Snapshot{Phase: books.PhaseSteady, Started: true, ConnectionsUp: 4}, true, ""},
		{"finished, connections closed", books.Snapshot{Phase: books.PhaseFinished, Started: true}, true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ok, why := health(func() books.Snapshot { return tc.snap }, res)()
			if ok != tc.ok || why != tc.why {
				t.Errorf("health = %v %q, want %v %q", ok, why, tc.ok, tc.why)
			}
		})
	}
}
