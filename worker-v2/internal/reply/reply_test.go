package reply

import (
	"bytes"
	"testing"
	"time"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/mqttconn"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/wire"
)

func mustTemplate(t *testing.T, s string) *wire.Template {
	t.Helper()
	tp, err := wire.ParseTemplate(s, "id")
	if err != nil {
		t.Fatal(err)
	}
	return tp
}

func TestEnvelope(t *testing.T) {
	r := &Rules{Mode: wire.Envelope}
	req := wire.Request{RunID: 1, ClientID: 2, Seq: 3, Intended: 4, Instance: []byte("lg"), ReplyTopic: []byte("resp/lg/3")}
	payload, _ := wire.AppendRequest(nil, &req, 10)
	packed, ok := r.Pack(nil, &mqttconn.Message{Topic: "req/3", Payload: payload})
	if !ok || !bytes.Equal(r.Request(packed), payload) {
		t.Fatalf("pack: %v", ok)
	}
	var m mqttconn.Message
	r.Answer(&m, nil, packed, 5*time.Millisecond, 7*time.Microsecond)
	var resp wire.Response
	if err := wire.DecodeResponse(m.Payload, &resp); err != nil || m.Topic != "resp/lg/3" {
		t.Fatalf("answer %q %v", m.Topic, err)
	}
	if resp.RunID != 1 || resp.ClientID != 2 || resp.Seq != 3 || resp.Intended != 4 || resp.QueueUS != 5000 || resp.ProcessUS != 7 {
		t.Errorf("response %+v", resp)
	}
}

func TestProperties(t *testing.T) {
	for _, tc := range []struct {
		name string
		r    *Rules
		want string
	}{
		{"filler", &Rules{Mode: wire.Properties, Filler: []byte("xxxx")}, "xxxx"},
		{"template", &Rules{Mode: wire.Properties, Template: mustTemplate(t, `{"ok":true}`)}, `{"ok":true}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := &mqttconn.Message{Topic: "req/1", Payload: []byte("anything"), ResponseTopic: "back/1", CorrelationData: []byte{1, 2, 3}}
			packed, ok := tc.r.Pack(nil, in)
			if !ok || string(tc.r.Request(packed)) != "anything" {
				t.Fatalf("pack %v %q", ok, tc.r.Request(packed))
			}
			var m mqttconn.Message
			tc.r.Answer(&m, nil, packed, 0, 0)
			if m.Topic != "back/1" || !bytes.Equal(m.CorrelationData, []byte{1, 2, 3}) || string(m.Payload) != tc.want {
				t.Errorf("answer %+v", m)
			}
		})
	}
}

func TestJSON(t *testing.T) {
	r := &Rules{Mode: wire.JSON, IDField: "id", ReplyToField: "reply_to", Template: mustTemplate(t, `{"id":"{{id}}","status":"ok"}`)}
	// 3.1.1: the reply topic comes from the payload.
	packed, ok := r.Pack(nil, &mqttconn.Message{Topic: "req/1", Payload: []byte(`{"id":"0000000a-1-2","reply_to":"resp/x/1","n":5}`)})
	if !ok {
		t.Fatal("pack refused a valid JSON request")
	}
	var m mqttconn.Message
	r.Answer(&m, nil, packed, 0, 0)
	if m.Topic != "resp/x/1" || string(m.Payload) != `{"id":"0000000a-1-2","status":"ok"}` || m.CorrelationData != nil {
		t.Errorf("answer %+v", m)
	}
	// MQTT 5: the Response Topic wins; Correlation Data is echoed.
	packed, ok = r.Pack(nil, &mqttconn.Message{Topic: "req/1", Payload: []byte(`{"id":7}`), ResponseTopic: "v5/back", CorrelationData: []byte("c")})
	if !ok {
		t.Fatal("pack refused")
	}
	r.Answer(&m, nil, packed, 0, 0)
	if m.Topic != "v5/back" || string(m.Payload) != `{"id":"7","status":"ok"}` || string(m.CorrelationData) != "c" {
		t.Errorf("answer %+v", m)
	}
}

func TestMalformed(t *testing.T) {
	env := &Rules{Mode: wire.Envelope}
	props := &Rules{Mode: wire.Properties}
	js := &Rules{Mode: wire.JSON, IDField: "id", ReplyToField: "reply_to"}
	for _, tc := range []struct {
		name string
		r    *Rules
		m    mqttconn.Message
	}{
		{"envelope garbage", env, mqttconn.Message{Payload: []byte("hello")}},
		{"no response topic", props, mqttconn.Message{Payload: []byte("x")}},
		{"wildcard response topic", props, mqttconn.Message{ResponseTopic: "resp/+"}},
		{"control character in response topic", props, mqttconn.Message{ResponseTopic: "resp/\x01"}},
		{"json without id", js, mqttconn.Message{Payload: []byte(`{"reply_to":"r"}`)}},
		{"json without reply_to on 3.1.1", js, mqttconn.Message{Payload: []byte(`{"id":"1"}`)}},
		{"json reply_to with a hash", js, mqttconn.Message{Payload: []byte(`{"id":"1","reply_to":"a/#"}`)}},
		{"not json", js, mqttconn.Message{Payload: []byte("\xff\x00")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, ok := tc.r.Pack(nil, &tc.m); ok {
				t.Errorf("accepted a malformed request")
			}
		})
	}
}

func TestNoAllocations(t *testing.T) {
	r := &Rules{Mode: wire.JSON, IDField: "id", ReplyToField: "reply_to", Template: mustTemplate(t, `{"id":"{{id}}"}`)}
	in := &mqttconn.Message{Payload: []byte(`{"id":"0000000a-1-2","reply_to":"resp/x/1"}`), CorrelationData: []byte("cd")}
	packed := make([]byte, 0, 256)
	buf := make([]byte, 0, 256)
	var m mqttconn.Message
	if n := testing.AllocsPerRun(100, func() {
		packed, _ = r.Pack(packed[:0], in)
		buf = r.Answer(&m, buf, packed, 0, 0)
	}); n != 0 {
		t.Errorf("%.1f allocations per request", n)
	}
}

// Pack and Answer never panic, and a packed request always answers.
func FuzzPackAnswer(f *testing.F) {
	f.Add([]byte(`{"id":"1","reply_to":"r"}`), "", []byte{})
	f.Add([]byte("x"), "back/1", []byte{1})
	f.Fuzz(func(t *testing.T, payload []byte, rt string, cd []byte) {
		for _, r := range []*Rules{{Mode: wire.Envelope}, {Mode: wire.Properties}, {Mode: wire.JSON, IDField: "id", ReplyToField: "reply_to"}} {
			packed, ok := r.Pack(nil, &mqttconn.Message{Payload: payload, ResponseTopic: rt, CorrelationData: cd})
			if !ok {
				continue
			}
			var m mqttconn.Message
			r.Answer(&m, nil, packed, time.Millisecond, time.Microsecond)
			if !wire.ValidReplyTopic([]byte(m.Topic)) {
				t.Fatalf("answered on an invalid topic %q", m.Topic)
			}
		}
	})
}
