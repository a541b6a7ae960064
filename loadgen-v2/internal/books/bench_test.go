package books

import (
	"testing"
	"time"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/mqttconn"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/wire"
)

// BenchmarkResponse: one response through classification and matching
// (decode, key, books, latency record), its request claimed again first.
func BenchmarkResponse(b *testing.B) {
	for _, m := range []struct {
		name string
		env  map[string]string
	}{
		{"envelope", nil},
		{"properties", map[string]string{"MQTT_VERSION": "5", "PAYLOAD_BYTES": "64"}},
		{"json", map[string]string{"CORRELATE": "json:id", "REQUEST_TEMPLATE": `{"id":"{{id}}","reply_to":"{{reply}}","ts":{{ts}}}`}},
	} {
		b.Run(m.name, func(b *testing.B) {
			env := map[string]string{"VIRTUAL_CLIENTS": "10000", "INTERVAL_MS": "1000", "REQUEST_TIMEOUT": "10s", "INSTANCE_ID": "bench"}
			for k, v := range m.env {
				env[k] = v
			}
			bk, res := newBooks(b, env)
			bk.Start(time.Now().Add(-time.Second))
			msgs := make([]mqttconn.Message, bk.n)
			for c := range bk.n {
				msgs[c] = response(res.Requester.Mode, wire.Key{RunID: res.RunID, ClientID: res.Offset + c}, bk.sched.TimeOf(c, 0), 1)
			}
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				c := uint32(i) % bk.n
				bk.table.Claim(c, 0)
				bk.OnResponse(int(c&3), &msgs[c])
			}
			b.StopTimer()
			if bk.Final().Measured.ResponsesMatched == 0 {
				b.Fatal("no response matched")
			}
		})
	}
}
