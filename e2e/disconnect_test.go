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
// lost with the kicked connection end as timeouts.
func TestFaultRandomDisconnects(t *testing.T) {
	m := brokertest.StartMosquitto(t, "")
	w, _ := startWorker(t, m.URL(), "CLIENT_ID_PREFIX=wk-kick")
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
	if r.MatchRate < 0.99 {
		t.Errorf("match rate %.4f: the worker did not recover from disconnects", r.MatchRate)
	}
	if code := w.stop(t); code != 0 {
		t.Errorf("worker exit %d after %d takeovers: %s", code, kicks, w.errOut.String())
	}
}
