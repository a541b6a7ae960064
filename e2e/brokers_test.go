package e2e

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/brokertest"
)

// Tests against third-party brokers the project is not built around: NATS
// in MQTT mode (MQTT 3.1.1 only, $share accepted as an ordinary filter and
// never delivered) and Mosquitto with limits.

// TestBrokersSharedNotDeliveredExits1: on NATS the default worker (shared
// subscription) finds at start that nothing is delivered to $share/… and
// exits 1 saying so and what to set, instead of running ready and answering
// nothing.
func TestBrokersSharedNotDeliveredExits1(t *testing.T) {
	n := brokertest.StartNATS(t)
	w := start(t, "worker-v2", "MQTT_BROKER="+n.URL(), "HTTP_ADDR=", "CONNECTIONS=4")
	code := w.wait(t, 60*time.Second)
	out := w.errOut.String()
	if code != 1 {
		t.Fatalf("worker exit %d, want 1\n%s", code, tail(out, 4000))
	}
	for _, want := range []string{"accepts $share/workers/req/+ but does not deliver it", "SHARED_SUBSCRIPTION=false", "WORKER_COUNT"} {
		if !strings.Contains(out, want) {
			t.Errorf("worker output lacks %q:\n%s", want, tail(out, 4000))
		}
	}
	if strings.Contains(out, "worker running") {
		t.Errorf("the worker ran before failing:\n%s", tail(out, 4000))
	}
}

// runNoDuplicates runs the given workers (each its own environment) and one
// loadgen on broker, and checks exact books with every request answered
// exactly once.
func runNoDuplicates(t *testing.T, broker string, workers [][]string, lgEnv ...string) {
	t.Helper()
	for _, env := range workers {
		startWorker(t, broker, env...)
	}
	rf := filepath.Join(t.TempDir(), "report.json")
	lg := start(t, "loadgen-v2", loadgenEnv(broker, rf, append([]string{"VIRTUAL_CLIENTS=500", "DURATION=2s"}, lgEnv...)...)...)
	if code := lg.wait(t, 60*time.Second); code != 0 {
		t.Fatalf("loadgen exit %d\n%s", code, tail(lg.errOut.String(), 4000))
	}
	r := readReport(t, rf)
	logReport(t, t.Name(), r)
	checkBalanced(t, r)
	if r.Duplicate != 0 || r.ResponsesMatched != r.RequestsSent || r.MatchRate != 1 || r.RequestsSent == 0 {
		t.Errorf("want every request answered exactly once: sent %d matched %d duplicate %d timeouts %d",
			r.RequestsSent, r.ResponsesMatched, r.Duplicate, r.Timeouts)
	}
}

// TestBrokersOneSubscriberPerInstance: SHARED_SUBSCRIPTION=false with
// several connections answers each request once (one connection
// subscribes), on NATS and on Mosquitto.
func TestBrokersOneSubscriberPerInstance(t *testing.T) {
	t.Run("nats", func(t *testing.T) {
		n := brokertest.StartNATS(t)
		runNoDuplicates(t, n.URL(), [][]string{{"SHARED_SUBSCRIPTION=false"}})
	})
	t.Run("mosquitto", func(t *testing.T) {
		m := brokertest.StartMosquitto(t, "")
		runNoDuplicates(t, m.URL(), [][]string{{"SHARED_SUBSCRIPTION=false"}})
	})
}

// TestBrokersShardSplit: on NATS (no shared subscriptions) two worker
// instances split the request shards (WORKER_COUNT=2, WORKER_INDEX 0 and 1):
// every request answered once.
func TestBrokersShardSplit(t *testing.T) {
	n := brokertest.StartNATS(t)
	split := func(i string) []string {
		return []string{"SHARED_SUBSCRIPTION=false", "WORKER_COUNT=2", "WORKER_INDEX=" + i, "SHARDS=64", "CLIENT_ID_PREFIX=wk" + i}
	}
	runNoDuplicates(t, n.URL(), [][]string{split("0"), split("1")})
}
