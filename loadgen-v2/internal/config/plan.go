package config

import (
	"fmt"
	"strconv"
	"time"
)

// Plan is the one line the loadgen prints at start: what it will offer, for
// how long, to which broker ("offering 50,000 req/s from 100,000 virtual
// clients every 2 s over 100 connections, until stopped, to tcp://…").
func (r *Resolved) Plan() string {
	until := "until stopped (DURATION=0; Ctrl-C for the report)"
	if r.Duration > 0 {
		until = "for " + r.Duration.String()
		if r.Warmup > 0 {
			until += " (the first " + r.Warmup.String() + " are warm-up, left out)"
		}
	}
	return fmt.Sprintf("offering %s req/s from %s virtual clients every %s over %d connections, %s, to %s",
		thousands(r.Rate()), thousands(float64(r.VirtualClients)), r.Interval().Round(time.Millisecond), r.Connections, until, r.Broker)
}

// thousands formats x rounded to an integer with thousands separators.
func thousands(x float64) string {
	s := strconv.FormatInt(int64(x+0.5), 10)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
