package engine

import (
	"bytes"
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/brokertest"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/mqttconn"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/wire"
)

// responder is a generic request/response service for the protocol modes:
// answer computes the reply (topic, message) of a request, or "" to drop it.
func startResponder(t *testing.T, url string, version byte, answer func(m *mqttconn.Message) (string, *mqttconn.Message)) {
	t.Helper()
	var pool atomic.Pointer[mqttconn.Pool] // the handler may run before Dial returns
	p, err := mqttconn.Dial(context.Background(), mqttconn.Options{
		Broker: url, ClientIDPrefix: "svc", Connections: 2, ProtocolVersion: version, Logger: quietLog(),
		Subscriptions: func(int) []string { return []string{"$share/svc/req/+"} },
		OnMessage: func(conn int, m *mqttconn.Message) {
			topic, reply := answer(m)
			if topic == "" {
				return
			}
			reply.Topic = topic
			pl := pool.Load()
			if pl == nil {
				return
			}
			c := pl.Conn(conn)
			_ = c.QueueMessage(reply)
			c.Flush()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	pool.Store(p)
}

// echoV5 answers the MQTT 5 way: to the Response Topic, with the Correlation Data.
func echoV5(m *mqttconn.Message) (string, *mqttconn.Message) {
	return m.ResponseTopic, &mqttconn.Message{CorrelationData: bytes.Clone(m.CorrelationData), Payload: []byte("ok")}
}

// echoJSON copies the request's "id" into {"id":...,"status":"ok"} and
// answers on its "reply_to".
func echoJSON(m *mqttconn.Message) (string, *mqttconn.Message) {
	id, ok1 := wire.JSONField(m.Payload, "id")
	to, ok2 := wire.JSONField(m.Payload, "reply_to")
	if !ok1 || !ok2 {
		return "", nil
	}
	return string(to), &mqttconn.Message{Payload: fmt.Appendf(nil, `{"status":"ok","data":{"id":"decoy"},"id":"%s"}`, id)}
}

func TestProtocolModes(t *testing.T) {
	const jsonTmpl = `{"id":"{{id}}","reply_to":"{{reply}}","client":{{client}},"ts":{{ts}}}`
	for _, tc := range []struct {
		name    string
		version byte
		env     map[string]string
		answer  func(m *mqttconn.Message) (string, *mqttconn.Message)
	}{
		{"MQTT 5 properties", 5, map[string]string{"MQTT_VERSION": "5", "PAYLOAD_BYTES": "64"}, echoV5},
		{"MQTT 5 properties with a template", 5, map[string]string{"MQTT_VERSION": "5", "REQUEST_TEMPLATE": `{"c":{{client}}}`}, echoV5},
		{"JSON on 3.1.1", 4, map[string]string{"CORRELATE": "json:id", "REQUEST_TEMPLATE": jsonTmpl}, echoJSON},
		{"JSON on 5, one response topic", 5, map[string]string{"MQTT_VERSION": "5", "CORRELATE": "json:id", "REQUEST_TEMPLATE": jsonTmpl,
			"RESPONSE_TOPIC": "answers/{{instance}}"}, echoJSON},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := brokertest.Start(t)
			startResponder(t, b.URL(), tc.version, tc.answer)
			env := map[string]string{"REQUEST_TIMEOUT": "20s", "VIRTUAL_CLIENTS": "500"}
			for k, v := range tc.env {
				env[k] = v
			}
			eng, err := New(testConfig(t, b.URL(), env), quietLog(), nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			rep, err := eng.Run(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if rep.Scheduled != 2000 || !rep.Balanced || rep.ResponsesMatched != rep.RequestsSent || rep.MatchRate != 1 {
				t.Errorf("want all 2000 matched: %+v", rep.Counts)
			}
			if rep.Malformed+rep.Unknown+rep.Duplicate != 0 {
				t.Errorf("stray responses: malformed %d unknown %d duplicate %d", rep.Malformed, rep.Unknown, rep.Duplicate)
			}
			if rep.WorkerQueue.Count != 0 || rep.Latency.Count != int64(rep.ResponsesMatched) {
				t.Errorf("histograms: latency %d, worker queue %d (no worker timings outside the envelope)", rep.Latency.Count, rep.WorkerQueue.Count)
			}
			if rep.RequestBytes == 0 || rep.ResponseBytes == 0 {
				t.Errorf("payload bytes: %d out, %d in", rep.RequestBytes, rep.ResponseBytes)
			}
			wantProto := map[byte]string{4: "3.1.1", 5: "5"}[tc.version]
			if rep.Protocol != wantProto || (tc.env["CORRELATE"] == "" && rep.Correlation != "properties") {
				t.Errorf("report says MQTT %s / %s", rep.Protocol, rep.Correlation)
			}
			if tc.env["PAYLOAD_BYTES"] == "64" && rep.RequestBytes != 64*rep.RequestsSent {
				t.Errorf("request bytes %d for %d requests of 64 bytes", rep.RequestBytes, rep.RequestsSent)
			}
		})
	}
}

// Responses that cannot be matched are counted by reason, never matched.
func TestProtocolBadResponses(t *testing.T) {
	for _, tc := range []struct {
		name   string
		env    map[string]string
		answer func(m *mqttconn.Message) (string, *mqttconn.Message)
		want   string // which counter must equal sent
	}{
		{"no correlation data", map[string]string{"MQTT_VERSION": "5"}, func(m *mqttconn.Message) (string, *mqttconn.Message) {
			return m.ResponseTopic, &mqttconn.Message{Payload: []byte("x")}
		}, "malformed"},
		{"short correlation data", map[string]string{"MQTT_VERSION": "5"}, func(m *mqttconn.Message) (string, *mqttconn.Message) {
			return m.ResponseTopic, &mqttconn.Message{CorrelationData: m.CorrelationData[:5]}
		}, "malformed"},
		{"foreign correlation data", map[string]string{"MQTT_VERSION": "5"}, func(m *mqttconn.Message) (string, *mqttconn.Message) {
			cd := bytes.Clone(m.CorrelationData)
			cd[0] ^= 0xff // another run's id
			return m.ResponseTopic, &mqttconn.Message{CorrelationData: cd}
		}, "unknown"},
		{"JSON without the field", map[string]string{"CORRELATE": "json:id", "REQUEST_TEMPLATE": `{"id":"{{id}}","r":"{{reply}}"}`}, func(m *mqttconn.Message) (string, *mqttconn.Message) {
			to, _ := wire.JSONField(m.Payload, "r")
			return string(to), &mqttconn.Message{Payload: []byte(`{"status":"ok"}`)}
		}, "malformed"},
		{"not JSON", map[string]string{"CORRELATE": "json:id", "REQUEST_TEMPLATE": `{"id":"{{id}}","r":"{{reply}}"}`}, func(m *mqttconn.Message) (string, *mqttconn.Message) {
			to, _ := wire.JSONField(m.Payload, "r")
			return string(to), &mqttconn.Message{Payload: []byte("\x00\xff garbage")}
		}, "malformed"},
		{"JSON id mangled", map[string]string{"CORRELATE": "json:id", "REQUEST_TEMPLATE": `{"id":"{{id}}","r":"{{reply}}"}`}, func(m *mqttconn.Message) (string, *mqttconn.Message) {
			to, _ := wire.JSONField(m.Payload, "r")
			id, _ := wire.JSONField(m.Payload, "id")
			// The run id is 8 lower-case hex digits: 'G' is never one of
			// them (upper-casing alone left an all-digit run id intact, 2%
			// of runs).
			return string(to), &mqttconn.Message{Payload: fmt.Appendf(nil, `{"id":"G%s"}`, id[1:])}
		}, "malformed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := brokertest.Start(t)
			version := byte(4)
			if tc.env["MQTT_VERSION"] == "5" {
				version = 5
			}
			startResponder(t, b.URL(), version, tc.answer)
			env := map[string]string{"VIRTUAL_CLIENTS": "100", "DURATION": "1s", "REQUEST_TIMEOUT": "1s"}
			for k, v := range tc.env {
				env[k] = v
			}
			eng, err := New(testConfig(t, b.URL(), env), quietLog(), nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			rep, err := eng.Run(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]uint64{"malformed": rep.Malformed, "unknown": rep.Unknown}[tc.want]
			if rep.ResponsesMatched != 0 || !rep.Balanced || rep.Timeouts != rep.RequestsSent || got == 0 || got > rep.RequestsSent || rep.RequestsSent == 0 {
				t.Errorf("want the responses counted %s (none matched) and every request timed out: %s %d, %+v", tc.want, tc.want, got, rep.Counts)
			}
		})
	}
}
