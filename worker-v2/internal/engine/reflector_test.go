package engine_test

import (
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/brokertest"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/wire"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/worker-v2/internal/workertest"
)

// TestForgedReplyTopicIsNotWrittenTo: a well-formed request naming a reply
// topic outside REPLY_TOPIC_ALLOW (default resp/#) is refused and counted;
// nothing is published there, while real requests are answered. Widened by
// configuration, the same topic is answered.
func TestForgedReplyTopicIsNotWrittenTo(t *testing.T) {
	for _, tc := range []struct {
		name, allow string
		rogue       int64 // replies the rogue topic gets
	}{{"default", "", 0}, {"widened", "resp/#, rogue/+", 1}} {
		t.Run(tc.name, func(t *testing.T) {
			b := brokertest.Start(t)
			var rogue atomic.Int64
			spy := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(b.URL()).SetClientID(workertest.ClientID("spy")))
			if tok := spy.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
				t.Fatalf("spy connect: %v", tok.Error())
			}
			t.Cleanup(func() { spy.Disconnect(100) })
			if tok := spy.Subscribe("rogue/#", 0, func(mqtt.Client, mqtt.Message) { rogue.Add(1) }); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
				t.Fatalf("spy subscribe: %v", tok.Error())
			}
			req := workertest.NewRequester(t, b.URL())
			c := workertest.Config(b.URL())
			c.ReplyAllow = tc.allow
			e := start(t, c, nil)
			defer e.stop(t)

			forged, err := wire.AppendRequest(nil, &wire.Request{RunID: 9, ClientID: 1, Seq: 1, ReplyTopic: []byte("rogue/answers")}, 0)
			if err != nil {
				t.Fatal(err)
			}
			req.Publish(t, "req/1", forged)
			req.SendRequests(t, 0, 10)
			brokertest.WaitFor(t, "the real requests answered and the forged one settled", func() bool {
				s := e.Stats()
				return req.Count() == 10 && s.Refused+s.Processed == 11 && rogue.Load() == tc.rogue
			})
			s := e.Stats()
			if want := uint64(1 - tc.rogue); s.Refused != want {
				t.Errorf("refused %d, want %d", s.Refused, want)
			}
			req.Barrier(t) // every reply the worker published has reached the broker's subscribers
			if got := rogue.Load(); got != tc.rogue {
				t.Errorf("%d replies published on rogue/answers, want %d", got, tc.rogue)
			}
		})
	}
}
