package engine_test

import (
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/brokertest"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/worker-v2/internal/modes"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/worker-v2/internal/workertest"
)

// Integration tests against the embedded broker: what the real connections
// (subscriptions, shared groups, QoS, the write paths) do for the engine.

// TestReplyWriteModes answers a backlog with each way replies are written:
// by the worker once the queue is empty (MODE=health, WRITE_LINGER=0), by the
// worker after each reply (MODE=sleep), by the flusher after WRITE_LINGER.
// One worker, so the backlog is answered back to back: a reply left in the
// buffer when the queue ran empty would never arrive.
func TestReplyWriteModes(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mode   string
		linger time.Duration
	}{
		{"health, written by the worker when the queue is empty", modes.Health, 0},
		{"sleep, written by the worker after each reply", modes.Sleep, 0},
		{"health, written by the flusher after WRITE_LINGER", modes.Health, 2 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := brokertest.Start(t)
			req := workertest.NewRequester(t, b.URL())
			c := workertest.Config(b.URL())
			c.Mode, c.SleepMS, c.WriteLinger = tc.mode, 1, tc.linger
			c.MinWorkers, c.MaxWorkers, c.Connections = 1, 1, 1
			e := start(t, c, nil)
			const n = 200
			req.SendRequests(t, 0, n)
			brokertest.WaitFor(t, "every request answered", func() bool {
				return req.Count() >= n && e.Stats().Processed == n
			})
			req.CheckAnswered(t, n)
			e.stop(t)
		})
	}
}

// TestSharedGroup: two engines in one share group answer every request
// exactly once between them.
func TestSharedGroup(t *testing.T) {
	b := brokertest.Start(t)
	req := workertest.NewRequester(t, b.URL())
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())

	e1 := start(t, workertest.Config(b.URL()), nil)
	e2 := start(t, workertest.Config(b.URL()), nil)
	const n = 200
	req.SendRequests(t, 0, n)
	brokertest.WaitFor(t, "all responses", func() bool { return req.Count() >= n })
	e1.stop(t)
	e2.stop(t)
	s1, s2 := e1.Stats(), e2.Stats()
	if s1.Processed+s2.Processed != n || s1.Received+s2.Received != n {
		t.Errorf("received %d + %d, processed %d + %d; want %d each request once", s1.Received, s2.Received, s1.Processed, s2.Processed, n)
	}
	req.CheckAnswered(t, n)
}

// TestPlainSubscription: SHARED_SUBSCRIPTION=false subscribes to MQTT_SUB
// itself.
func TestPlainSubscription(t *testing.T) {
	b := brokertest.Start(t)
	req := workertest.NewRequester(t, b.URL())
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())

	c := workertest.Config(b.URL())
	c.Connections = 1
	c.Shared = false
	c.ShareGroup = ""
	e := start(t, c, nil)
	req.SendRequests(t, 0, 20)
	brokertest.WaitFor(t, "responses", func() bool { return req.Count() == 20 })
	e.stop(t)
	req.CheckAnswered(t, 20)
}

// TestQoS1: with QOS=1 the subscription and the replies go through paho's
// acknowledged path (replies are copied, since paho keeps the slice until
// the PUBACK).
func TestQoS1(t *testing.T) {
	b := brokertest.Start(t)
	req := workertest.NewRequester(t, b.URL())
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())

	c := workertest.Config(b.URL())
	c.QoS = 1
	e := start(t, c, nil)
	const n = 100
	req.SendRequests(t, 0, n)
	brokertest.WaitFor(t, "responses", func() bool { return req.Count() == n })
	e.stop(t)
	req.CheckAnswered(t, n)
}
