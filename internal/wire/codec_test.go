package wire

import (
	"bytes"
	"testing"
	"time"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/mqttconn"
)

func mustTemplate(t testing.TB, s string, allowed ...string) *Template {
	t.Helper()
	tp, err := ParseTemplate(s, allowed...)
	if err != nil {
		t.Fatal(err)
	}
	return tp
}

// codecPair is a requester and the responder that answers it.
type codecPair struct {
	name string
	req  *Requester
	resp *Responder
}

func codecPairs(t testing.TB) []codecPair {
	jsonReq := mustTemplate(t, `{"id":"{{id}}","reply_to":"{{reply}}","ts":{{ts}},"shard":{{shard}},"i":"{{instance}}"}`)
	return []codecPair{
		{"envelope", &Requester{Mode: Envelope, Instance: "lg-1", Size: 64}, &Responder{Mode: Envelope}},
		{"properties, filler", &Requester{Mode: Properties, Filler: []byte("xxxx"), V5: true, ExpirySeconds: 10}, &Responder{Mode: Properties, Filler: []byte("ok")}},
		{"properties, template", &Requester{Mode: Properties, Template: mustTemplate(t, `{"c":{{client}},"s":{{seq}}}`), V5: true}, &Responder{Mode: Properties, Template: mustTemplate(t, `{"ok":true}`, "id")}},
		{"json on 3.1.1", &Requester{Mode: JSON, Field: "id", Template: jsonReq, Instance: "lg-1"},
			&Responder{Mode: JSON, IDField: "id", ReplyToField: "reply_to", Template: mustTemplate(t, `{"status":"ok","id":"{{id}}"}`, "id")}},
		{"json on 5", &Requester{Mode: JSON, Field: "id", Template: jsonReq, V5: true, ExpirySeconds: 3},
			&Responder{Mode: JSON, IDField: "id", Template: mustTemplate(t, `{"id":"{{id}}"}`, "id")}},
	}
}

// TestCodecRoundTrip: every mode's request, answered by the responder of the
// mode, gives the requester back the key it sent; the requester finds the
// key in its own request too (a frame handed back unsent).
func TestCodecRoundTrip(t *testing.T) {
	k := Key{RunID: 0xdeadbeef, ClientID: 4242, Seq: 7}
	for _, p := range codecPairs(t) {
		t.Run(p.name, func(t *testing.T) {
			enc := p.req.NewEncoder()
			m, err := enc.Encode("req/3", "resp/lg-1/3", 3, k, 123456789, 1_700_000_000_123)
			if err != nil {
				t.Fatal(err)
			}
			if m.Topic != "req/3" {
				t.Errorf("topic %q", m.Topic)
			}
			if p.req.V5 != (m.ResponseTopic == "resp/lg-1/3") || m.ExpirySeconds != p.req.ExpirySeconds {
				t.Errorf("MQTT 5 properties: response topic %q, expiry %d", m.ResponseTopic, m.ExpirySeconds)
			}
			if p.req.Mode == Envelope && len(m.Payload) != p.req.Size {
				t.Errorf("envelope of %d bytes, want it padded to %d", len(m.Payload), p.req.Size)
			}
			if got, ok := p.req.RequestKey(m); !ok || got != k {
				t.Errorf("RequestKey = %+v, %v; want %+v", got, ok, k)
			}
			packed, ok := p.resp.Pack(nil, m)
			if !ok {
				t.Fatalf("the responder refused the request %q", m.Payload)
			}
			var answer mqttconn.Message
			p.resp.Answer(&answer, nil, packed, 5*time.Millisecond, 7*time.Microsecond)
			if answer.Topic != "resp/lg-1/3" {
				t.Errorf("answered on %q", answer.Topic)
			}
			var rc Received
			if !p.req.Read(&answer, &rc) || rc.Key() != k {
				t.Fatalf("Read = %+v; want key %+v", rc, k)
			}
			want := Received{Response: Response{RunID: k.RunID, ClientID: k.ClientID, Seq: k.Seq}}
			if p.req.Mode == Envelope {
				want.Stamped, want.Intended, want.QueueUS, want.ProcessUS = true, 123456789, 5000, 7
			}
			if rc != want {
				t.Errorf("Read = %+v, want %+v", rc, want)
			}
		})
	}
}

func TestJSONRequestPayload(t *testing.T) {
	r := codecPairs(t)[3].req
	m, err := r.NewEncoder().Encode("req/3", "resp/lg-1/3", 3, Key{0xa, 1, 2}, 0, 1_700_000_000_123)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"id":"0000000a-1-2","reply_to":"resp/lg-1/3","ts":1700000000123,"shard":3,"i":"lg-1"}`
	if string(m.Payload) != want || m.CorrelationData != nil {
		t.Errorf("payload %s, correlation data %v; want %s and none", m.Payload, m.CorrelationData, want)
	}
}

func TestEncodeTooLong(t *testing.T) {
	r := &Requester{Mode: Envelope, Instance: "lg"}
	if _, err := r.NewEncoder().Encode("req/0", "", 0, Key{}, 0, 0); err == nil {
		t.Error("an envelope without reply topic was encoded")
	}
}

// Responses that do not fit the mode are malformed: Read refuses them.
func TestReadMalformed(t *testing.T) {
	env := &Requester{Mode: Envelope}
	props := &Requester{Mode: Properties}
	js := &Requester{Mode: JSON, Field: "id"}
	request, _ := AppendRequest(nil, &Request{ReplyTopic: []byte("r")}, 0)
	for _, tc := range []struct {
		name string
		r    *Requester
		m    mqttconn.Message
	}{
		{"envelope garbage", env, mqttconn.Message{Payload: []byte("garbage")}},
		{"envelope empty", env, mqttconn.Message{}},
		{"envelope request for a response", env, mqttconn.Message{Payload: request}},
		{"no correlation data", props, mqttconn.Message{Payload: []byte("x")}},
		{"short correlation data", props, mqttconn.Message{CorrelationData: []byte{1, 2, 3, 4, 5}}},
		{"long correlation data", props, mqttconn.Message{CorrelationData: make([]byte, CorrelationSize+1)}},
		{"json without the member", js, mqttconn.Message{Payload: []byte(`{"status":"ok"}`)}},
		{"not json", js, mqttconn.Message{Payload: []byte("\x00\xff garbage")}},
		{"json id mangled", js, mqttconn.Message{Payload: []byte(`{"id":"G000000a-1-2"}`)}},
		{"json id in a nested object only", js, mqttconn.Message{Payload: []byte(`{"data":{"id":"0000000a-1-2"}}`)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var rc Received
			if tc.r.Read(&tc.m, &rc) {
				t.Errorf("Read accepted it: %+v", rc)
			}
			if _, ok := tc.r.RequestKey(&tc.m); ok && !bytes.Equal(tc.m.Payload, request) {
				t.Errorf("RequestKey accepted it")
			}
		})
	}
}

// TestCodecAllocs: encoding a request and reading a response allocate
// nothing once the buffers have grown (the loadgen's hot path).
func TestCodecAllocs(t *testing.T) {
	k := Key{RunID: 1, ClientID: 2, Seq: 3}
	for _, p := range codecPairs(t) {
		t.Run(p.name, func(t *testing.T) {
			enc := p.req.NewEncoder()
			m, _ := enc.Encode("req/3", "resp/lg-1/3", 3, k, 1, 2)
			packed, _ := p.resp.Pack(nil, m)
			var answer mqttconn.Message
			p.resp.Answer(&answer, nil, packed, 0, 0)
			answer.Payload = bytes.Clone(answer.Payload)
			var rc Received
			if n := testing.AllocsPerRun(100, func() {
				_, _ = enc.Encode("req/3", "resp/lg-1/3", 3, k, 1, 2)
				_ = p.req.Read(&answer, &rc)
			}); n != 0 {
				t.Errorf("%.1f allocations per request", n)
			}
		})
	}
}

func TestResponderEnvelope(t *testing.T) {
	r := &Responder{Mode: Envelope}
	req := Request{RunID: 1, ClientID: 2, Seq: 3, Intended: 4, Instance: []byte("lg"), ReplyTopic: []byte("resp/lg/3")}
	payload, _ := AppendRequest(nil, &req, 10)
	packed, ok := r.Pack(nil, &mqttconn.Message{Topic: "req/3", Payload: payload})
	if !ok || !bytes.Equal(r.Request(packed), payload) {
		t.Fatalf("pack: %v", ok)
	}
	var m mqttconn.Message
	r.Answer(&m, nil, packed, 5*time.Millisecond, 7*time.Microsecond)
	var resp Response
	if err := DecodeResponse(m.Payload, &resp); err != nil || m.Topic != "resp/lg/3" {
		t.Fatalf("answer %q %v", m.Topic, err)
	}
	if resp.RunID != 1 || resp.ClientID != 2 || resp.Seq != 3 || resp.Intended != 4 || resp.QueueUS != 5000 || resp.ProcessUS != 7 {
		t.Errorf("response %+v", resp)
	}
}

func TestResponderProperties(t *testing.T) {
	for _, tc := range []struct {
		name string
		r    *Responder
		want string
	}{
		{"filler", &Responder{Mode: Properties, Filler: []byte("xxxx")}, "xxxx"},
		{"template", &Responder{Mode: Properties, Template: mustTemplate(t, `{"ok":true}`, "id")}, `{"ok":true}`},
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

func TestResponderJSON(t *testing.T) {
	r := &Responder{Mode: JSON, IDField: "id", ReplyToField: "reply_to", Template: mustTemplate(t, `{"id":"{{id}}","status":"ok"}`, "id")}
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

func TestResponderMalformed(t *testing.T) {
	env := &Responder{Mode: Envelope}
	props := &Responder{Mode: Properties}
	js := &Responder{Mode: JSON, IDField: "id", ReplyToField: "reply_to"}
	for _, tc := range []struct {
		name string
		r    *Responder
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

func TestResponderAllocs(t *testing.T) {
	r := &Responder{Mode: JSON, IDField: "id", ReplyToField: "reply_to", Template: mustTemplate(t, `{"id":"{{id}}"}`, "id")}
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

// FuzzPackAnswer: Pack and Answer never panic, and a packed request always
// answers on a valid topic.
func FuzzPackAnswer(f *testing.F) {
	f.Add([]byte(`{"id":"1","reply_to":"r"}`), "", []byte{})
	f.Add([]byte("x"), "back/1", []byte{1})
	f.Fuzz(func(t *testing.T, payload []byte, rt string, cd []byte) {
		for _, r := range []*Responder{{Mode: Envelope}, {Mode: Properties}, {Mode: JSON, IDField: "id", ReplyToField: "reply_to"}} {
			packed, ok := r.Pack(nil, &mqttconn.Message{Payload: payload, ResponseTopic: rt, CorrelationData: cd})
			if !ok {
				continue
			}
			var m mqttconn.Message
			r.Answer(&m, nil, packed, time.Millisecond, time.Microsecond)
			if !ValidReplyTopic([]byte(m.Topic)) {
				t.Fatalf("answered on an invalid topic %q", m.Topic)
			}
		}
	})
}

// FuzzRead: Read and RequestKey never panic on any message, in any mode.
func FuzzRead(f *testing.F) {
	f.Add([]byte(`{"id":"0000000a-1-2"}`), []byte{})
	f.Add(AppendResponse(nil, &Response{RunID: 1}), AppendCorrelation(nil, Key{1, 2, 3}))
	f.Fuzz(func(t *testing.T, payload, cd []byte) {
		m := &mqttconn.Message{Payload: payload, CorrelationData: cd}
		for _, r := range []*Requester{{Mode: Envelope}, {Mode: Properties}, {Mode: JSON, Field: "id"}} {
			var rc Received
			_ = r.Read(m, &rc)
			_, _ = r.RequestKey(m)
		}
	})
}
