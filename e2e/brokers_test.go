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

// TestBrokersAnnouncedLimitsExit2: on MQTT 5 a setting the broker announced
// at connect that it cannot carry (Mosquitto max_qos 1, max_packet_size)
// exits 2 before the run, naming our variable and the broker's limit.
func TestBrokersAnnouncedLimitsExit2(t *testing.T) {
	m := brokertest.StartMosquitto(t, "max_qos 1\nmax_packet_size 2048\n")
	rf := filepath.Join(t.TempDir(), "report.json")
	for _, tc := range []struct {
		name string
		bin  string
		env  []string
		want []string
	}{
		{"loadgen qos", "loadgen-v2", loadgenEnv(m.URL(), rf, "MQTT_VERSION=5", "QOS=2"), []string{"QOS=2", "Maximum QoS 1"}},
		{"loadgen payload", "loadgen-v2", loadgenEnv(m.URL(), rf, "MQTT_VERSION=5", "PAYLOAD_BYTES=4000"), []string{"PAYLOAD_BYTES=4000", "Maximum Packet Size of 2048 bytes"}},
		{"worker qos", "worker-v2", []string{"MQTT_BROKER=" + m.URL(), "HTTP_ADDR=", "MQTT_VERSION=5", "QOS=2"}, []string{"QOS=2", "Maximum QoS 1"}},
		{"worker reply size", "worker-v2", []string{"MQTT_BROKER=" + m.URL(), "HTTP_ADDR=", "MQTT_VERSION=5", "RESPONSE_BYTES=4000"}, []string{"RESPONSE_BYTES=4000", "Maximum Packet Size of 2048 bytes"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := start(t, tc.bin, tc.env...)
			code := p.wait(t, 60*time.Second)
			out := p.errOut.String()
			if code != 2 {
				t.Fatalf("exit %d, want 2\n%s", code, tail(out, 3000))
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, tail(out, 3000))
				}
			}
		})
	}
}

// TestBrokersMQTT5RefusedSaysSo: MQTT_VERSION=5 against NATS (MQTT 3.1.1
// only) fails at once naming the setting, in both binaries.
func TestBrokersMQTT5RefusedSaysSo(t *testing.T) {
	n := brokertest.StartNATS(t)
	rf := filepath.Join(t.TempDir(), "report.json")
	for _, p := range []*proc{
		start(t, "loadgen-v2", loadgenEnv(n.URL(), rf, "MQTT_VERSION=5")...),
		start(t, "worker-v2", "MQTT_BROKER="+n.URL(), "HTTP_ADDR=", "MQTT_VERSION=5"),
	} {
		code := p.wait(t, 60*time.Second)
		if out := p.errOut.String(); code != 1 || !strings.Contains(out, "the broker refused MQTT 5: set MQTT_VERSION=3.1.1") {
			t.Errorf("%s: exit %d, want 1 naming MQTT_VERSION=3.1.1:\n%s", p.cmd.Path, code, tail(out, 3000))
		}
	}
}
