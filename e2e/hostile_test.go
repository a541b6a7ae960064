package e2e

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/brokertest"
)

// TestHostileOversizedCostsACount: anyone may publish to the response and
// request topics. A 3 MiB message, above the 2 MiB frame limit, retained on
// one of the loadgen's response topics (so delivered at every subscribe)
// and published to a request topic during the run, costs one count each —
// oversized in the loadgen's report, inbound_oversized in the worker's
// /stats and metrics — and no connection: the loadgen connects each
// connection once and never reconnects, the worker stays up, and the books
// balance with every request answered.
func TestHostileOversizedCostsACount(t *testing.T) {
	m := brokertest.StartMosquitto(t, "")
	hostile := testClient(t, m.URL(), "hostile")
	big := bytes.Repeat([]byte("x"), 3<<20)
	publish := func(topic string, retained bool) {
		t.Helper()
		if tok := hostile.Publish(topic, 1, retained, big); !tok.WaitTimeout(brokertest.Patience) || tok.Error() != nil {
			t.Fatalf("publish %s: %v", topic, tok.Error())
		}
	}
	publish("resp/lgx/5", true) // the loadgen's shard 5: its connection 5 gets it on every subscribe
	w, waddr := startWorker(t, m.URL())
	rf := filepath.Join(t.TempDir(), "report.json")
	maddr := brokertest.FreeAddr(t)
	lg := start(t, "loadgen-v2", loadgenEnv(m.URL(), rf, "INSTANCE_ID=lgx", "METRICS_ADDR="+maddr, "METRICS_LINGER=1m")...)
	waitLoadgen(t, lg, maddr, "the loadgen sending", func(v lgVars) bool { return v.RequestsSent > 0 })
	publish("req/7", false) // to the workers' shared subscription: one worker connection gets it
	var ws struct {
		InboundOversized uint64 `json:"inbound_oversized"`
		Connections      int    `json:"connections"`
		ConnectionsUp    int    `json:"connections_up"`
	}
	waitEvent(t, "the worker counting the oversized request", []*proc{w}, func() (bool, string) {
		err := brokertest.FetchJSON("http://"+waddr+"/stats", &ws)
		return err == nil && ws.InboundOversized == 1, "inbound_oversized " + strconv.FormatUint(ws.InboundOversized, 10)
	})
	waitEvent(t, "the loadgen's report", []*proc{lg}, func() (bool, string) {
		code, _, err := brokertest.Get("http://" + maddr + "/report")
		return err == nil && code == 200, ""
	})
	v, err := loadgenVars(maddr)
	if err != nil {
		t.Fatal(err)
	}
	if code := lg.stop(t); code != 0 {
		t.Fatalf("loadgen exit %d\n%s", code, tail(lg.errOut.String(), 3000))
	}
	r := readReport(t, rf)
	logReport(t, t.Name(), r)
	b, err := os.ReadFile(rf)
	if err != nil {
		t.Fatal(err)
	}
	var counts struct {
		Oversized *uint64 `json:"oversized"`
	}
	if err := json.Unmarshal(b, &counts); err != nil {
		t.Fatal(err)
	}
	if counts.Oversized == nil || *counts.Oversized != 1 {
		t.Errorf("report oversized %v, want 1", counts.Oversized)
	}
	checkAllAnswered(t, r, 2000*3/0.5)
	if v.Connects != 8 || v.Reconnects != 0 {
		t.Errorf("loadgen connections: %s; want 8 connects and no reconnect", v)
	}
	brokertest.GetJSON(t, "http://"+waddr+"/stats", &ws)
	mf := brokertest.Scrape(t, "http://"+waddr+"/metrics")
	if ws.InboundOversized != 1 || ws.ConnectionsUp != ws.Connections ||
		brokertest.Sample(t, mf, "mqttrr_worker_inbound_oversized_total") != 1 || brokertest.Sample(t, mf, "mqttrr_worker_connection_losses_total") != 0 {
		t.Errorf("worker: %+v, metrics oversized %v, losses %v", ws, brokertest.Sample(t, mf, "mqttrr_worker_inbound_oversized_total"),
			brokertest.Sample(t, mf, "mqttrr_worker_connection_losses_total"))
	}
	if line := grepBlock(lg.out.String(), "inbound oversized"); line == "" {
		t.Errorf("text report lacks the oversized line:\n%s", lg.out.String())
	} else {
		t.Log(line)
	}
	if code := w.stop(t); code != 0 {
		t.Errorf("worker exit %d", code)
	}
}
