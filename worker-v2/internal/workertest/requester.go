package workertest

import (
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/brokertest"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/wire"
)

// Requester is the test's side of the benchmark on a real broker: a paho
// client that publishes requests and collects the responses.
type Requester struct {
	c       mqtt.Client
	topic   string // where Barrier publishes its marker
	mu      sync.Mutex
	resps   map[uint32][]wire.Response // by Seq
	n       int
	bad     int
	markers chan struct{}
}

// markerSeq is the Seq of Barrier's marker, never a request's.
const markerSeq = 1<<32 - 1

// NewRequester connects to brokerURL and subscribes to resp/t/+ for the
// responses to Request's requests; it disconnects when the test ends.
func NewRequester(t testing.TB, brokerURL string) *Requester {
	t.Helper()
	r := &Requester{topic: "resp/t/0", resps: map[uint32][]wire.Response{}, markers: make(chan struct{}, 1)}
	o := mqtt.NewClientOptions().AddBroker(brokerURL).SetClientID(ClientID("requester")).SetAutoReconnect(false)
	r.c = mqtt.NewClient(o)
	if tok := r.c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("requester connect: %v", tok.Error())
	}
	t.Cleanup(func() { r.c.Disconnect(100) })
	tok := r.c.Subscribe("resp/t/+", 0, func(_ mqtt.Client, m mqtt.Message) {
		var resp wire.Response
		r.mu.Lock()
		defer r.mu.Unlock()
		if wire.DecodeResponse(m.Payload(), &resp) != nil {
			r.bad++
			return
		}
		if resp.Seq == markerSeq {
			r.markers <- struct{}{}
			return
		}
		r.resps[resp.Seq] = append(r.resps[resp.Seq], resp)
		r.n++
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("requester subscribe: %v", tok.Error())
	}
	return r
}

// Publish publishes payload on topic at QoS 0 and waits until it is sent.
func (r *Requester) Publish(t testing.TB, topic string, payload []byte) {
	t.Helper()
	if tok := r.c.Publish(topic, 0, false, payload); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publish: %v", tok.Error())
	}
}

// SendRequests publishes requests first..first+n-1 (Message).
func (r *Requester) SendRequests(t testing.TB, first, n int) {
	t.Helper()
	for i := first; i < first+n; i++ {
		m := Message(t, i)
		r.Publish(t, m.Topic, m.Payload)
	}
}

// Barrier publishes a marker to the requester's own response topic and
// waits until the broker has delivered it back: what the broker had routed
// to the requester before (the replies of a worker that has stopped) has
// arrived by then.
func (r *Requester) Barrier(t testing.TB) {
	t.Helper()
	r.Publish(t, r.topic, wire.AppendResponse(nil, &wire.Response{Seq: markerSeq}))
	select {
	case <-r.markers:
	case <-time.After(brokertest.Patience):
		t.Fatalf("the barrier's marker did not come back in %v", brokertest.Patience)
	}
}

// Count returns the responses received.
func (r *Requester) Count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n
}

// CheckAnswered fails the test unless requests 0..n-1 each got exactly one
// response echoing run 7, its client id and its intended time (Request), and
// nothing undecodable arrived.
func (r *Requester) CheckAnswered(t testing.TB, n int) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := range n {
		rs := r.resps[uint32(i)]
		if len(rs) != 1 {
			t.Errorf("request %d: %d responses, want 1", i, len(rs))
			continue
		}
		if x := rs[0]; x.RunID != 7 || x.ClientID != uint32(i) || x.Intended != int64(i)*1_000_003 {
			t.Errorf("request %d: response %+v does not echo run 7, client %d, intended %d", i, x, i, int64(i)*1_000_003)
		}
	}
	if r.bad != 0 {
		t.Errorf("%d undecodable responses", r.bad)
	}
}
