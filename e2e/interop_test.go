package e2e

import (
	"bufio"
	"encoding/json"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/brokertest"
)

// startPahoPython runs examples/responders/paho_echo.py (Eclipse Paho for
// Python, no code of ours) against brokerURL and waits for its "ready".
func startPahoPython(t *testing.T, brokerURL, mode string) {
	t.Helper()
	if err := exec.Command("/usr/bin/python3", "-c", "import paho.mqtt").Run(); err != nil {
		brokertest.Unavailable(t, "python3-paho-mqtt not installed for /usr/bin/python3 (apt-get install python3-paho-mqtt; .ci/run installs it)")
	}
	u, err := url.Parse(brokerURL)
	if err != nil {
		t.Fatal(err)
	}
	script, err := filepath.Abs("../examples/responders/paho_echo.py")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("/usr/bin/python3", script, u.Hostname(), u.Port(), mode)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); _ = cmd.Wait() })
	ready := make(chan bool, 1)
	go func() {
		line, _ := bufio.NewReader(out).ReadString('\n')
		ready <- strings.TrimSpace(line) == "ready"
		_, _ = io.Copy(io.Discard, out)
	}()
	select {
	case ok := <-ready:
		if !ok {
			t.Fatal("the Python responder did not start")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the Python responder did not subscribe within 30 s")
	}
}

// startBrokerKind starts the embedded broker or Mosquitto and returns its URL.
func startBrokerKind(t *testing.T, kind string) string {
	t.Helper()
	if kind == "mosquitto" {
		return brokertest.StartMosquitto(t, "").URL()
	}
	return brokertest.Start(t).URL()
}

// TestLoadgenLoadsAThirdPartyResponder: loadgen-v2 against services written
// with another MQTT library (Eclipse Paho for Python): MQTT 5 Response Topic
// + Correlation Data, and JSON correlation on 3.1.1, through the embedded
// broker and Mosquitto. Light load: every request is answered.
func TestLoadgenLoadsAThirdPartyResponder(t *testing.T) {
	for _, tc := range []struct {
		name, mode string
		env        []string
	}{
		{"MQTT 5 properties", "v5", []string{"MQTT_VERSION=5"}},
		{"JSON on 3.1.1", "json", []string{"CORRELATE=json:id", `REQUEST_TEMPLATE={"id":"{{id}}","reply_to":"{{reply}}","client":{{client}},"ts":{{ts}}}`}},
	} {
		for _, bk := range []string{"embedded", "mosquitto"} {
			t.Run(tc.name+" via "+bk, func(t *testing.T) {
				url := startBrokerKind(t, bk)
				startPahoPython(t, url, tc.mode)
				rf := filepath.Join(t.TempDir(), "report.json")
				env := append(loadgenEnv(url, rf, "VIRTUAL_CLIENTS=200", "DURATION=2s", "REQUEST_TIMEOUT=20s"), tc.env...)
				lg := start(t, "loadgen-v2", env...)
				if code := lg.wait(t, 90*time.Second); code != 0 {
					t.Fatalf("loadgen exit %d\n%s", code, tail(lg.errOut.String(), 4000))
				}
				r := readReport(t, rf)
				logReport(t, tc.name, r)
				checkBalanced(t, r)
				if r.Scheduled != 800 || r.MatchRate != 1 || r.ResponsesMatched != r.RequestsSent || r.Malformed+r.Unknown+r.Duplicate != 0 {
					t.Errorf("want all 800 requests answered once by the Python service: %+v", r)
				}
			})
		}
	}
}

// TestProtocolModesEndToEnd: loadgen-v2 and worker-v2 in each protocol
// mode, through the embedded broker and Mosquitto, all answered.
func TestProtocolModesEndToEnd(t *testing.T) {
	const tmpl = `REQUEST_TEMPLATE={"id":"{{id}}","reply_to":"{{reply}}","n":{{seq}}}`
	for _, tc := range []struct {
		name       string
		lg, worker []string
	}{
		{"MQTT 5 properties", []string{"MQTT_VERSION=5"}, []string{"MQTT_VERSION=5", "RESPONSE_BYTES=100"}},
		{"MQTT 5 envelope", []string{"MQTT_VERSION=5", "CORRELATE=envelope"}, []string{"MQTT_VERSION=5", "CORRELATE=envelope"}},
		{"JSON on 3.1.1", []string{"CORRELATE=json:id", tmpl}, []string{"CORRELATE=json:id"}},
		{"JSON on 5", []string{"MQTT_VERSION=5", "CORRELATE=json:id", tmpl}, []string{"MQTT_VERSION=5", "CORRELATE=json:id"}},
	} {
		for _, bk := range []string{"embedded", "mosquitto"} {
			t.Run(tc.name+" via "+bk, func(t *testing.T) {
				url := startBrokerKind(t, bk)
				w, _ := startWorker(t, url, tc.worker...)
				rf := filepath.Join(t.TempDir(), "report.json")
				// Open loop: a slow answer on a busy machine must not turn into a skip.
				lg := start(t, "loadgen-v2", append(loadgenEnv(url, rf, "DURATION=2s", "REQUEST_TIMEOUT=20s", "MAX_INFLIGHT_PER_CLIENT=16"), tc.lg...)...)
				if code := lg.wait(t, 90*time.Second); code != 0 {
					t.Fatalf("loadgen exit %d\n%s", code, tail(lg.errOut.String(), 4000))
				}
				r := readReport(t, rf)
				logReport(t, tc.name, r)
				checkAllAnswered(t, r, 2000*2/0.5)
				if r.Malformed+r.Unknown+r.Duplicate != 0 {
					t.Errorf("stray responses: %+v", r)
				}
				if code := w.stop(t); code != 0 {
					t.Errorf("worker exit %d", code)
				}
			})
		}
	}
}

// TestMosquittoRRAsksWorker: mosquitto_rr (Debian's mosquitto-clients, an
// MQTT 5 requester nobody here wrote) sends one request to worker-v2 and
// gets its answer: the standard Response Topic / Correlation Data exchange.
func TestMosquittoRRAsksWorker(t *testing.T) {
	rr := brokertest.NeedTool(t, "mosquitto_rr", "apt-get install mosquitto-clients; .ci/run installs it")
	m := brokertest.StartMosquitto(t, "")
	startWorker(t, m.URL(), "MQTT_VERSION=5", `RESPONSE_TEMPLATE={"status":"ok","from":"worker-v2"}`)
	out, err := exec.Command(rr, "-V", "5", "-h", "127.0.0.1", "-p", strconv.Itoa(m.Port),
		"-t", "req/7", "-e", "resp/rr/7", "-m", "ping", "-W", "20").CombinedOutput()
	if err != nil {
		t.Fatalf("mosquitto_rr: %v (exit 27 is its time-out)\n%s", err, out)
	}
	if got := strings.TrimSpace(string(out)); got != `{"status":"ok","from":"worker-v2"}` {
		t.Errorf("mosquitto_rr printed %q", got)
	}
}

// TestPahoResponderAnswersLoadgen: `rr-echo respond`, the plain paho echo
// responder that scripts/benchmark.sh workercpu reads worker-v2's CPU
// against, answers every loadgen-v2 request once through both brokers, and
// the count it prints on SIGTERM is the loadgen's.
func TestPahoResponderAnswersLoadgen(t *testing.T) {
	for _, bk := range []string{"embedded", "mosquitto"} {
		t.Run(bk, func(t *testing.T) {
			url := startBrokerKind(t, bk)
			rs := startArgs(t, "rr-echo", []string{"respond"}, "BROKER="+url, "CONNECTIONS=4")
			waitEvent(t, "rr-echo respond ready", []*proc{rs}, func() (bool, string) {
				return strings.Contains(rs.errOut.String(), "responder ready"), ""
			})
			rf := filepath.Join(t.TempDir(), "report.json")
			lg := start(t, "loadgen-v2", loadgenEnv(url, rf, "VIRTUAL_CLIENTS=200", "DURATION=2s", "REQUEST_TIMEOUT=20s")...)
			if code := lg.wait(t, 90*time.Second); code != 0 {
				t.Fatalf("loadgen exit %d\n%s", code, tail(lg.errOut.String(), 4000))
			}
			r := readReport(t, rf)
			checkBalanced(t, r)
			if r.Scheduled != 800 || r.MatchRate != 1 || r.ResponsesMatched != r.RequestsSent || r.Malformed+r.Unknown+r.Duplicate != 0 {
				t.Errorf("want all 800 requests answered once by rr-echo respond: %+v", r)
			}
			_ = rs.cmd.Process.Signal(syscall.SIGTERM)
			if code := rs.wait(t, 30*time.Second); code != 0 {
				t.Fatalf("rr-echo respond exit %d\n%s", code, rs.errOut.String())
			}
			var a struct{ Received, Answered, Malformed uint64 }
			if err := json.Unmarshal([]byte(rs.out.String()), &a); err != nil {
				t.Fatalf("rr-echo respond output %q: %v", rs.out.String(), err)
			}
			if a.Answered != r.RequestsSent || a.Received != a.Answered || a.Malformed != 0 {
				t.Errorf("rr-echo respond says %+v; the loadgen sent %d", a, r.RequestsSent)
			}
		})
	}
}
