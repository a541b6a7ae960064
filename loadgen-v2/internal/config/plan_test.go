package config

import (
	"testing"
	"time"
)

func TestPlan(t *testing.T) {
	r := &Resolved{Config: Config{Broker: "tcp://localhost:1883", VirtualClients: 100000, IntervalMS: 2000, Connections: 100}}
	want := "offering 50,000 req/s from 100,000 virtual clients every 2s over 100 connections, until stopped (DURATION=0; Ctrl-C for the report), to tcp://localhost:1883"
	if got := r.Plan(); got != want {
		t.Errorf("Plan()\n got %q\nwant %q", got, want)
	}
	r.Duration, r.Warmup, r.VirtualClients, r.IntervalMS = 10*time.Second, 2*time.Second, 10000, 1000
	want = "offering 10,000 req/s from 10,000 virtual clients every 1s over 100 connections, for 10s (the first 2s are warm-up, left out), to tcp://localhost:1883"
	if got := r.Plan(); got != want {
		t.Errorf("Plan()\n got %q\nwant %q", got, want)
	}
}
