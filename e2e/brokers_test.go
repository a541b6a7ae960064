package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
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
// exactly once. It returns the path of the loadgen's JSON report.
func runNoDuplicates(t *testing.T, broker string, workers [][]string, lgEnv ...string) string {
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
	return rf
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

// TestBrokersQoS2NotCarriedExits2: over MQTT 3.1.1 a broker without QoS 2
// announces nothing at connect, and closes the connection on a QoS 2
// PUBLISH; but its SUBACK grants QoS 1 for the QoS 2 subscription (NATS;
// Mosquitto with max_qos 1). Both binaries, on both transports, exit 2
// before the run naming QOS and the QoS granted, with no connection lost.
func TestBrokersQoS2NotCarriedExits2(t *testing.T) {
	const want = "QOS=2: the broker granted QoS 1 on the subscriptions (it does not support QoS 2); set QOS=1 or lower"
	for _, b := range []struct {
		name  string
		start func(t *testing.T) string
	}{
		{"nats", func(t *testing.T) string { return brokertest.StartNATS(t).URL() }},
		{"mosquitto max_qos 1", func(t *testing.T) string { return brokertest.StartMosquitto(t, "max_qos 1\n").URL() }},
	} {
		t.Run(b.name, func(t *testing.T) {
			url := b.start(t)
			rf := filepath.Join(t.TempDir(), "report.json")
			for _, tr := range []string{"fast", "paho"} {
				for _, tc := range []struct {
					bin     string
					env     []string
					started string // the log line of a run that started
				}{
					{"loadgen-v2", loadgenEnv(url, rf, "QOS=2", "TRANSPORT="+tr), "loadgen started"},
					{"worker-v2", []string{"MQTT_BROKER=" + url, "HTTP_ADDR=", "QOS=2", "TRANSPORT=" + tr}, "worker running"},
				} {
					t.Run(tc.bin+" "+tr, func(t *testing.T) {
						p := start(t, tc.bin, tc.env...)
						code := p.wait(t, 60*time.Second)
						out := p.errOut.String()
						if code != 2 || !strings.Contains(out, want) {
							t.Fatalf("exit %d, want 2 with %q:\n%s", code, want, tail(out, 3000))
						}
						for _, bad := range []string{tc.started, "connection lost"} {
							if strings.Contains(out, bad) {
								t.Errorf("output has %q: the run began\n%s", bad, tail(out, 3000))
							}
						}
						if _, err := os.Stat(rf); err == nil {
							t.Errorf("a report was written")
						}
					})
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

// capsJSON is the broker record as /stats, /debug/vars and the report show
// it (mqttconn.Capabilities).
type capsJSON struct {
	Protocol          string  `json:"protocol"`
	MaximumQoS        *int    `json:"maximum_qos"`
	MaximumPacketSize *uint32 `json:"maximum_packet_size_bytes"`
	Shared            *bool   `json:"shared_subscription_available"`
	Retain            *bool   `json:"retain_available"`
	ReceiveMaximum    *int    `json:"receive_maximum"`
	TopicAliasMaximum *int    `json:"topic_alias_maximum"`
	GrantedQoS        *int    `json:"granted_qos"`
	SharedProbe       string  `json:"shared_probe"`
}

// TestBrokersCapabilitiesShown: what the broker announced at connect is in
// the worker's /stats and /debug/vars, the loadgen's /stats and /debug/vars
// and its report (JSON "broker", and a text line), on MQTT 5 against the
// embedded broker (mochi: no limit, receive maximum 1024; it announces no
// topic alias maximum to a client that asked for none) and against Mosquitto announcing max_qos 1 and
// max_packet_size 4096.
func TestBrokersCapabilitiesShown(t *testing.T) {
	p := func(v int) *int { return &v }
	yes := true
	for _, tc := range []struct {
		name   string
		broker func(t *testing.T) string
		want   capsJSON
	}{
		{"embedded", func(t *testing.T) string { return brokertest.Start(t).URL() },
			capsJSON{Protocol: "5", Shared: &yes, Retain: &yes, ReceiveMaximum: p(1024)}},
		{"mosquitto", func(t *testing.T) string {
			return brokertest.StartMosquitto(t, "max_qos 1\nmax_packet_size 4096\n").URL()
		}, capsJSON{Protocol: "5", MaximumQoS: p(1), MaximumPacketSize: func() *uint32 { v := uint32(4096); return &v }(), Shared: &yes, Retain: &yes}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url := tc.broker(t)
			w, waddr := startWorker(t, url, "MQTT_VERSION=5")
			check := func(where string, got *capsJSON) {
				t.Helper()
				if got == nil {
					t.Errorf("%s: no broker record", where)
					return
				}
				js, _ := json.Marshal(got)
				t.Logf("%s: %s", where, js)
				eqInt := func(name string, g, w *int) {
					if (g == nil) != (w == nil) || g != nil && *g != *w {
						t.Errorf("%s: %s %v, want %v", where, name, deref(g), deref(w))
					}
				}
				eqInt("maximum_qos", got.MaximumQoS, tc.want.MaximumQoS)
				eqInt("granted_qos", got.GrantedQoS, p(0)) // QOS=0: every subscription granted 0
				if tc.want.ReceiveMaximum != nil {
					eqInt("receive_maximum", got.ReceiveMaximum, tc.want.ReceiveMaximum)
					eqInt("topic_alias_maximum", got.TopicAliasMaximum, tc.want.TopicAliasMaximum)
				}
				if got.Protocol != "5" || (got.MaximumPacketSize == nil) != (tc.want.MaximumPacketSize == nil) ||
					got.MaximumPacketSize != nil && *got.MaximumPacketSize != *tc.want.MaximumPacketSize ||
					got.Shared == nil || !*got.Shared || got.Retain == nil || !*got.Retain {
					t.Errorf("%s: %+v, want %+v", where, *got, tc.want)
				}
			}
			var ws struct {
				Broker *capsJSON `json:"broker"`
			}
			brokertest.GetJSON(t, "http://"+waddr+"/stats", &ws)
			check("worker /stats", ws.Broker)
			if ws.Broker != nil && ws.Broker.SharedProbe != "delivered" {
				t.Errorf("worker /stats: shared_probe %q, want delivered", ws.Broker.SharedProbe)
			}
			var wv struct {
				W struct {
					Broker *capsJSON `json:"broker"`
				} `json:"worker"`
			}
			brokertest.GetJSON(t, "http://"+waddr+"/debug/vars", &wv)
			check("worker /debug/vars", wv.W.Broker)

			rf := filepath.Join(t.TempDir(), "report.json")
			maddr := brokertest.FreeAddr(t)
			env := loadgenEnv(url, rf, "MQTT_VERSION=5", "VIRTUAL_CLIENTS=200", "DURATION=1s", "METRICS_ADDR="+maddr, "METRICS_LINGER=1m")
			lg := start(t, "loadgen-v2", env...)
			waitEvent(t, "the loadgen's report", []*proc{lg}, func() (bool, string) {
				code, _, err := brokertest.Get("http://" + maddr + "/report")
				return err == nil && code == 200, fmt.Sprint(code, err)
			})
			var ls struct {
				Broker *capsJSON `json:"broker"`
			}
			brokertest.GetJSON(t, "http://"+maddr+"/stats", &ls)
			check("loadgen /stats", ls.Broker)
			var lv struct {
				L struct {
					Broker *capsJSON `json:"broker"`
				} `json:"loadgen"`
			}
			brokertest.GetJSON(t, "http://"+maddr+"/debug/vars", &lv)
			check("loadgen /debug/vars", lv.L.Broker)
			if code := lg.stop(t); code != 0 {
				t.Fatalf("loadgen exit %d\n%s", code, tail(lg.errOut.String(), 3000))
			}
			var rep struct {
				Broker *capsJSON `json:"broker"`
			}
			b, err := os.ReadFile(rf)
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(b, &rep); err != nil {
				t.Fatal(err)
			}
			check("report", rep.Broker)
			if block := grepBlock(lg.out.String(), "broker "); !strings.Contains(block, "MQTT 5: maximum QoS") {
				t.Errorf("text report: broker line %q\n%s", block, lg.out.String())
			} else {
				t.Logf("text report:\n%s", block)
			}
			if code := w.stop(t); code != 0 {
				t.Errorf("worker exit %d", code)
			}
		})
	}
}

func deref(p *int) any {
	if p == nil {
		return nil
	}
	return *p
}

// grepBlock returns the first line of s that starts with prefix and the
// indented lines that continue it.
func grepBlock(s, prefix string) string {
	var b strings.Builder
	for line := range strings.Lines(s) {
		switch {
		case b.Len() == 0 && strings.HasPrefix(line, prefix):
		case b.Len() > 0 && strings.HasPrefix(line, " "):
		case b.Len() > 0:
			return b.String()
		default:
			continue
		}
		b.WriteString(line)
	}
	return b.String()
}

// TestBrokersRefusedTopicNamesVariable: NATS refuses '.' in a topic level;
// a loadgen whose INSTANCE_ID has one fails at start naming INSTANCE_ID and
// RESPONSE_TOPIC (not a bare "subscription refused"), with one ERROR line for
// all its connections; the default INSTANCE_ID (hostname-pid, made safe)
// subscribes on the same broker. A worker's refused MQTT_SUB names MQTT_SUB.
func TestBrokersRefusedTopicNamesVariable(t *testing.T) {
	n := brokertest.StartNATS(t)
	rf := filepath.Join(t.TempDir(), "report.json")
	lg := start(t, "loadgen-v2", loadgenEnv(n.URL(), rf, "INSTANCE_ID=host.example.com-7", "DURATION=1s")...)
	code := lg.wait(t, 60*time.Second)
	out := lg.errOut.String()
	if code != 1 {
		t.Fatalf("exit %d, want 1\n%s", code, tail(out, 3000))
	}
	for _, w := range []string{"subscription refused by broker: resp/host.example.com-7/", "INSTANCE_ID=host.example.com-7", "RESPONSE_TOPIC=resp/{{instance}}/{{shard}}", "letters, digits, '-' and '_'"} {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, tail(out, 3000))
		}
	}
	if errs := strings.Count(out, "level=ERROR"); errs > 2 {
		t.Errorf("%d ERROR lines for one refused topic on 8 connections, want at most 2 (the refusal, the exit):\n%s", errs, tail(out, 3000))
	}
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "level=ERROR") {
			t.Log(l)
		}
	}
	lg = start(t, "loadgen-v2", loadgenEnv(n.URL(), rf, "DURATION=1s", "REQUEST_TIMEOUT=1s", "SLO_SUCCESS_RATE=0", "SLO_MATCH_RATE=0")...)
	if code := lg.wait(t, 60*time.Second); code != 0 {
		t.Fatalf("default INSTANCE_ID: exit %d\n%s", code, tail(lg.errOut.String(), 3000))
	}
	w := start(t, "worker-v2", "MQTT_BROKER="+n.URL(), "HTTP_ADDR=", "SHARED_SUBSCRIPTION=false", "MQTT_SUB=req.v1/+")
	code = w.wait(t, 60*time.Second)
	if out := w.errOut.String(); code != 1 || !strings.Contains(out, "subscription refused by broker: req.v1/+") || !strings.Contains(out, "MQTT_SUB=req.v1/+") {
		t.Errorf("worker: exit %d, want 1 naming MQTT_SUB:\n%s", code, tail(out, 3000))
	} else {
		for _, l := range strings.Split(out, "\n") {
			if strings.Contains(l, "level=ERROR") {
				t.Log(l)
			}
		}
	}
}

// TestBrokersQoS: the compatibility table's QoS cells, run: QoS 1 and 2
// through Mosquitto and the embedded broker (shared subscriptions), QoS 1
// through NATS (one subscribing connection), each with exact books, every
// request answered once, and the QoS asked granted (the report's
// broker.granted_qos). QoS 2 through NATS: TestBrokersQoS2NotCarriedExits2.
func TestBrokersQoS(t *testing.T) {
	granted := func(t *testing.T, rf, qos string) {
		t.Helper()
		b, err := os.ReadFile(rf)
		if err != nil {
			t.Fatal(err)
		}
		var r struct {
			Broker *capsJSON `json:"broker"`
		}
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatal(err)
		}
		if r.Broker == nil || r.Broker.GrantedQoS == nil || strconv.Itoa(*r.Broker.GrantedQoS) != qos {
			t.Errorf("report broker %+v: want granted_qos %s", r.Broker, qos)
		}
	}
	for _, qos := range []string{"1", "2"} {
		t.Run("embedded qos"+qos, func(t *testing.T) {
			granted(t, runNoDuplicates(t, brokertest.Start(t).URL(), [][]string{{"QOS=" + qos}}, "QOS="+qos), qos)
		})
		t.Run("mosquitto qos"+qos, func(t *testing.T) {
			granted(t, runNoDuplicates(t, brokertest.StartMosquitto(t, "").URL(), [][]string{{"QOS=" + qos}}, "QOS="+qos), qos)
		})
	}
	t.Run("nats qos1", func(t *testing.T) {
		granted(t, runNoDuplicates(t, brokertest.StartNATS(t).URL(), [][]string{{"QOS=1", "SHARED_SUBSCRIPTION=false"}}, "QOS=1"), "1")
	})
}
