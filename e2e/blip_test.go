package e2e

import (
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/brokertest"
)

// TestFaultBrokerBlip: Mosquitto is killed and started again on the same
// port 0.3 s later, a blip. Every connection of both sides notices, comes
// back by itself and resubscribes; the books balance; sends fail only while
// a connection is down. The 0.3 s is the fault injected, not a wait for an
// event; the test asserts events and counts only. It logs what the blip
// cost: the sending time lost per loadgen connection (send_failed over the
// rate: each of the CONNECTIONS carries rate/CONNECTIONS, so summed over
// them and divided by their number it is send_failed / rate), and the
// requests lost because the worker was not subscribed yet (timed out).
func TestFaultBrokerBlip(t *testing.T) {
	for _, v := range []string{"3.1.1", "5"} {
		t.Run("MQTT "+v, func(t *testing.T) { brokerBlip(t, "MQTT_VERSION="+v) })
	}
}

func brokerBlip(t *testing.T, version string) {
	const outage = 300 * time.Millisecond
	m := brokertest.StartMosquitto(t, "")
	w, _ := startWorker(t, m.URL(), version)
	rf := filepath.Join(t.TempDir(), "report.json")
	maddr := brokertest.FreeAddr(t)
	const rate = 2000 / 0.5                                                                                                             // req/s: loadgenEnv's clients and interval
	lg := start(t, "loadgen-v2", loadgenEnv(m.URL(), rf, "DURATION=0", "REQUEST_TIMEOUT=1s", "METRICS_ADDR="+maddr, version, lossy)...) // the blip loses requests: the books are checked
	brokertest.WaitOK(t, "http://"+maddr+"/health")
	waitLoadgen(t, lg, maddr, "a second of responses before the blip", func(v lgVars) bool { return v.ResponsesMatched >= rate })

	m.Kill()
	killedAt := time.Now()
	down := waitLoadgen(t, lg, maddr, "every loadgen connection down", func(v lgVars) bool { return v.ConnectionsUp == 0 })
	sleepUntil(killedAt.Add(outage)) // the blip's length: the fault, not a synchronisation
	if err := m.Restart(); err != nil {
		t.Fatalf("restart: %v", err)
	}
	back := time.Since(killedAt)
	up := waitLoadgen(t, lg, maddr, "every loadgen connection up again", func(v lgVars) bool {
		return v.ConnectionsUp == v.Connections && v.Reconnects >= uint64(v.Connections)
	})
	first := waitLoadgen(t, lg, maddr, "a response matched after the blip", func(v lgVars) bool { return v.ResponsesMatched > up.ResponsesMatched })
	waitLoadgen(t, lg, maddr, "a second of traffic matched after the blip", func(v lgVars) bool { return v.ResponsesMatched >= first.ResponsesMatched+rate })
	_ = lg.cmd.Process.Signal(syscall.SIGINT)
	if code := lg.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("loadgen exit %d\n%s", code, tail(lg.errOut.String(), 3000))
	}
	r := readReport(t, rf)
	logReport(t, "across the blip", r)
	checkBalanced(t, r)
	if r.SendFailed == 0 || down.Connections == 0 {
		t.Errorf("the blip cost no send_failed (%d) or no connection went down: %s", r.SendFailed, down)
	}
	if up.Reconnects != uint64(up.Connections) {
		t.Logf("note: %d reconnects for %d connections", up.Reconnects, up.Connections)
	}
	t.Logf("BLIP %s: broker down %v (killed, restarted after %v and listening); sending time lost per loadgen connection: %.3f s "+
		"(%d send_failed at %.0f req/s); requests timed out (sent while the worker was not yet subscribed, or lost with the broker): %d = %.3f s of traffic",
		version, back.Round(time.Millisecond), outage, float64(r.SendFailed)/rate, r.SendFailed, rate, r.Timeouts, float64(r.Timeouts)/rate)
	if code := w.stop(t); code != 0 {
		t.Errorf("worker exit %d", code)
	}
}
