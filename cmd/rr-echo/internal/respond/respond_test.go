package respond

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/cmd/rr-echo/internal/pahoclient"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/brokertest"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/envconf"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/wire"
)

// TestRun answers loadgen-v2 requests with the plain paho responder
// through the embedded broker: every request gets one response echoing its
// keys, and a payload that is no request is counted malformed.
func TestRun(t *testing.T) {
	b := brokertest.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan struct{})
	type outcome struct {
		a   *Answered
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		a, err := Run(ctx, Config{Broker: b.URL(), Connections: 2, Sub: "req/+", ShareGroup: "workers"}, func() { close(ready) })
		done <- outcome{a, err}
	}()
	select {
	case <-ready:
	case o := <-done:
		t.Fatalf("Run returned before ready: %v", o.err)
	}

	const n = 50
	got := make(chan wire.Response, n)
	c := paho.NewClient(paho.NewClientOptions().AddBroker(b.URL()).SetClientID("echo-test-requester"))
	if err := pahoclient.Wait(c.Connect()); err != nil {
		t.Fatal(err)
	}
	defer c.Disconnect(100)
	if err := pahoclient.Wait(c.Subscribe("resp/t/+", 0, func(_ paho.Client, m paho.Message) {
		var r wire.Response
		if wire.DecodeResponse(m.Payload(), &r) == nil {
			got <- r
		}
	})); err != nil {
		t.Fatal(err)
	}
	if err := pahoclient.Wait(c.Publish("req/1", 0, false, []byte("no request"))); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		p, err := wire.AppendRequest(nil, &wire.Request{RunID: 3, ClientID: uint32(i), Seq: 7, Intended: int64(i), ReplyTopic: []byte("resp/t/1")}, 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := pahoclient.Wait(c.Publish("req/"+strconv.Itoa(i%4), 0, false, p)); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[uint32]bool{}
	for range n {
		r := <-got
		if r.RunID != 3 || r.Seq != 7 || r.Intended != int64(r.ClientID) || seen[r.ClientID] {
			t.Fatalf("response %+v: not the echo of one request", r)
		}
		seen[r.ClientID] = true
	}
	cancel()
	o := <-done
	if o.err != nil {
		t.Fatal(o.err)
	}
	if o.a.Answered != n || o.a.Malformed != 1 || o.a.Received != n+1 {
		t.Errorf("answered %+v, want %d answered, 1 malformed, %d received", o.a, n, n+1)
	}
}

func TestValidate(t *testing.T) {
	for k, v := range map[string]string{"CONNECTIONS": "0", "SHARE_GROUP": "a/b", "QOS": "5", "DURATION": "-1s"} {
		t.Setenv(k, v)
	}
	var c Config
	err := envconf.Load(&c)
	if !errors.Is(err, envconf.ErrInvalid) {
		t.Fatalf("err %v, want ErrInvalid", err)
	}
	for _, w := range []string{"CONNECTIONS=0", "SHARE_GROUP=a/b", "QOS=5", "DURATION=-1s"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error does not name %q:\n%v", w, err)
		}
	}
}
