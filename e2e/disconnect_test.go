package e2e

import (
	"path/filepath"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/brokertest"
)

// A broker that disconnects clients at random: an intruder connects again and
// again with the client id of one of the worker's connections, so the broker
// drops that connection each time (MQTT session takeover). The worker
// reconnects and resubscribes; the loadgen's books stay exact and requests
// lost with the kicked connection end as timeouts. Recovery is judged by
// events, not by a loss ratio (how much a takeover loses depends on how busy
// the machine is): once the worker has every connection up again, a second
// run is answered in full.
func TestFaultRandomDisconnects(t *testing.T) {
	m := brokertest.StartMosquitto(t, "")
	w, waddr := startWorker(t, m.URL(), "CLIENT_ID_PREFIX=wk-kick")
	rf := filepath.Join(t.TempDir(), "r.json")
	lg := start(t, "loadgen-v2", loadgenEnv(m.URL(), rf, "DURATION=6s", "REQUEST_TIMEOUT=1s", lossy)...)

	stop := make(chan struct{})
	kicks := 0
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(700 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			// Take over connection i mod 4 of the worker, then leave.
			id := "wk-kick-" + string(rune('0'+i%4))
			c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(m.URL()).SetClientID(id).SetAutoReconnect(false))
			if tok := c.Connect(); tok.WaitTimeout(2*time.Second) && tok.Error() == nil {
				kicks++
				c.Disconnect(0)
			}
		}
	}()
	time.Sleep(5 * time.Second)
	close(stop)
	<-done
	if code := lg.wait(t, 60*time.Second); code != 0 {
		t.Fatalf("loadgen exit %d: %s", code, lg.errOut.String())
	}
	r := readReport(t, rf)
	t.Logf("%d takeovers: sent %d matched %d timed out %d send_failed %d skipped %d match %.5f",
		kicks, r.RequestsSent, r.ResponsesMatched, r.Timeouts, r.SendFailed, r.Skipped, r.MatchRate)
	if kicks < 4 {
		t.Fatalf("only %d takeovers happened", kicks)
	}
	if !r.Balanced || r.StillPending != 0 {
		t.Errorf("accounting: %+v", r)
	}
	if r.ResponsesMatched == 0 {
		t.Errorf("nothing matched during the takeovers: %+v", r)
	}
	// Recovered: every connection up again, then a run answered in full.
	var st struct {
		Up int `json:"connections_up"`
	}
	brokertest.WaitFor(t, "the worker's 4 connections up again", func() bool {
		return brokertest.FetchJSON("http://"+waddr+"/stats", &st) == nil && st.Up == 4
	})
	rf2 := filepath.Join(t.TempDir(), "after.json")
	after := start(t, "loadgen-v2", loadgenEnv(m.URL(), rf2, "DURATION=2s", "REQUEST_TIMEOUT=10s", "INSTANCE_ID=after-kicks", lossy)...)
	if code := after.wait(t, 60*time.Second); code != 0 {
		t.Fatalf("loadgen after the takeovers: exit %d: %s", code, after.errOut.String())
	}
	if r2 := readReport(t, rf2); r2.RequestsSent == 0 || r2.ResponsesMatched != r2.RequestsSent || !r2.Balanced {
		t.Errorf("after the takeovers: sent %d matched %d timed out %d: the worker did not recover", r2.RequestsSent, r2.ResponsesMatched, r2.Timeouts)
	}
	if code := w.stop(t); code != 0 {
		t.Errorf("worker exit %d after %d takeovers: %s", code, kicks, w.errOut.String())
	}
}
