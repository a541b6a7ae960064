package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/brokertest"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/wire"
)

// TestBrokerACLKeepsForgersOff runs brokers/mosquitto.acl for real. A
// "forger" — a client that may read the requests (user observer) — answers
// every request itself, with plausible timings, before or beside the worker.
// Without the ACL its answers reach the loadgen: every request is answered
// twice, and one of the two is counted duplicate. With the ACL Mosquitto
// drops the forger's publishes to resp/#: the worker (user worker) answers
// alone, nothing is duplicate, everything matches.
func TestBrokerACLKeepsForgersOff(t *testing.T) {
	auth, acl, pwFile := aclFiles(t)
	for _, tc := range []struct {
		name    string
		conf    string
		forgery bool // the forger's answers reach the loadgen
	}{
		{"without ACL", auth, true},
		{"with brokers/mosquitto.acl", auth + "acl_file " + acl + "\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := brokertest.StartMosquitto(t, tc.conf)
			forged := startForger(t, m.URL(), "observer", "secret-observer")
			startWorker(t, m.URL(), "MQTT_USERNAME=worker", "MQTT_PASSWORD_FILE="+pwFile)
			rf := filepath.Join(t.TempDir(), "report.json")
			lg := start(t, "loadgen-v2", loadgenEnv(m.URL(), rf, "VIRTUAL_CLIENTS=200", "DURATION=2s", "REQUEST_TIMEOUT=5s")...)
			if code := lg.wait(t, 60*time.Second); code != 0 {
				t.Fatalf("loadgen exit %d\n%s", code, tail(lg.errOut.String(), 4000))
			}
			r := readReport(t, rf)
			logReport(t, tc.name, r)
			t.Logf("forger published %d answers; loadgen: duplicate %d, implausible %d, late %d", forged.Load(), r.Duplicate, r.Implausible, r.Late)
			checkBalanced(t, r)
			if forged.Load() == 0 {
				t.Fatalf("the forger saw no requests: the test proves nothing")
			}
			reached := r.Duplicate + r.Implausible + r.Late
			if tc.forgery && reached == 0 {
				t.Errorf("without an ACL the forger's %d answers must reach the loadgen (as duplicates): the test cannot tell forgeries apart", forged.Load())
			}
			if !tc.forgery {
				if reached != 0 {
					t.Errorf("with the ACL %d forged answers reached the loadgen (duplicate %d, implausible %d, late %d)", reached, r.Duplicate, r.Implausible, r.Late)
				}
				if r.MatchRate != 1 || r.SendFailed != 0 {
					t.Errorf("with the ACL the worker must answer everything: match %.6f, send_failed %d", r.MatchRate, r.SendFailed)
				}
				// The ACL grants the loadgen its instance claim.
				if log := lg.errOut.String(); strings.Contains(log, "instance claim skipped") || strings.Contains(log, "not delivered back") {
					t.Errorf("with brokers/mosquitto.acl the instance claim failed:\n%s", tail(log, 3000))
				}
			}
		})
	}
}

// aclFiles writes a Mosquitto password file with the users worker and
// observer (passwords "secret-" + user) and a copy of brokers/mosquitto.acl
// into a temporary directory. It returns the configuration lines that turn
// on authentication (add "acl_file " + acl for the rules), the ACL file and
// a file holding the worker's password (MQTT_PASSWORD_FILE).
func aclFiles(t *testing.T) (auth, acl, pwFile string) {
	t.Helper()
	bin := brokertest.NeedTool(t, "mosquitto_passwd", "it comes with the mosquitto package")
	dir := t.TempDir()
	passwd := filepath.Join(dir, "passwd")
	pwFile = filepath.Join(dir, "pw")
	for i, user := range []string{"worker", "observer"} {
		args := []string{"-b", passwd, user, "secret-" + user}
		if i == 0 {
			args = append([]string{"-c"}, args...)
		}
		if out, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
			t.Fatalf("mosquitto_passwd: %v: %s", err, out)
		}
	}
	if err := os.WriteFile(pwFile, []byte("secret-worker\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	rules, err := os.ReadFile("../brokers/mosquitto.acl")
	if err != nil {
		t.Fatal(err)
	}
	acl = filepath.Join(dir, "mosquitto.acl")
	if err := os.WriteFile(acl, rules, 0o600); err != nil {
		t.Fatal(err)
	}
	auth = "password_file " + passwd + "\n"
	if os.Geteuid() == 0 {
		// Started as root, Mosquitto drops to the "mosquitto" user before it
		// reads these files, which then cannot enter the test's private
		// temporary directory. Stay root: the broker is this test's own.
		auth = "user root\n" + auth
	}
	return auth, acl, pwFile
}

// TestBrokerACLFleetTopics runs brokers/mosquitto.acl against the fleet
// control topics (mqtt-rr-bench/fleet/{FLEET_ID}/...): the loadgens
// (anonymous) publish and read there, retained messages included, and
// nobody else may publish there — a forged start or report would steer or
// falsify the fleet's verdict. Each forgery is followed by a loadgen's
// message on the same topic: Mosquitto handles one client's packets in
// order, and the forger's QoS 1 publish is acknowledged before the loadgen
// sends, so had the forgery passed, the reader would see it first.
func TestBrokerACLFleetTopics(t *testing.T) {
	auth, acl, _ := aclFiles(t)
	m := brokertest.StartMosquitto(t, auth+"acl_file "+acl+"\n")
	const base = "mqtt-rr-bench/fleet/acl-test/"

	got := make(chan string, 64)
	reader := aclClient(t, m.URL(), "lg-acl-reader", "", "")
	if tok := reader.Subscribe(base+"#", 1, func(_ mqtt.Client, msg mqtt.Message) {
		got <- msg.Topic() + " " + string(msg.Payload())
	}); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("the loadgen's subscription to %s# failed: %v", base, tok.Error())
	}
	next := func(what string) string {
		t.Helper()
		select {
		case s := <-got:
			return s
		case <-time.After(brokertest.Patience):
			t.Fatalf("no message on %s# within %v (waiting for %s)", base, brokertest.Patience, what)
			return ""
		}
	}
	loadgen := aclClient(t, m.URL(), "lg-acl-1", "", "")
	publish := func(c mqtt.Client, who, topic, payload string, retained bool) {
		t.Helper()
		if tok := c.Publish(base+topic, 1, retained, payload); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("%s: publish to %s%s: %v", who, base, topic, tok.Error())
		}
	}

	publish(loadgen, "loadgen", "hello/1", "loadgen-1", false)
	if s := next("the loadgen's hello"); s != base+"hello/1 loadgen-1" {
		t.Fatalf("the loadgen's hello: got %q", s)
	}
	for _, f := range []struct{ user, topic string }{{"worker", "start"}, {"observer", "report/1"}} {
		forger := aclClient(t, m.URL(), "forger-"+f.user, f.user, "secret-"+f.user)
		publish(forger, f.user, f.topic, "forged by "+f.user, false)
		publish(loadgen, "loadgen", f.topic, "loadgen", false)
		if s := next("the loadgen's message after the " + f.user + "'s"); s != base+f.topic+" loadgen" {
			t.Errorf("user %s published on %s%s: the reader got %q before the loadgen's message (brokers/mosquitto.acl must refuse it)", f.user, base, f.topic, s)
			next("the loadgen's message")
		}
	}

	// Retained control messages (start, report/N) reach a loadgen that
	// subscribes later: the ACL grants reading, not only live delivery.
	publish(loadgen, "loadgen", "start", "go", true)
	next("the retained start, live")
	if b := brokertest.Retained(t, m.URL(), base+"start"); string(b) != "go" {
		t.Errorf("retained %sstart read back %q, want \"go\"", base, b)
	}
	publish(loadgen, "loadgen", "start", "", true) // clear it, as the coordinator does
}

// aclClient connects a paho client as user (anonymous when "").
func aclClient(t *testing.T, brokerURL, id, user, password string) mqtt.Client {
	t.Helper()
	opts := mqtt.NewClientOptions().AddBroker(brokerURL).SetClientID(id).SetUsername(user).SetPassword(password).
		SetAutoReconnect(false).SetConnectTimeout(5 * time.Second)
	c := mqtt.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect %s (user %q): %v", id, user, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c
}

// startForger connects as user and answers every request on req/+ itself,
// claiming no queue wait and no processing time. It returns how many answers
// it published.
func startForger(t *testing.T, brokerURL, user, password string) *atomic.Int64 {
	t.Helper()
	var n atomic.Int64
	opts := mqtt.NewClientOptions().AddBroker(brokerURL).SetClientID("forger").SetUsername(user).SetPassword(password).
		SetAutoReconnect(false).SetConnectTimeout(5 * time.Second)
	c := mqtt.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("forger connect: %v", tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	// The handler only publishes (QoS 0 never waits for an ack), so it does not
	// block paho's router.
	tok := c.Subscribe("req/+", 0, func(c mqtt.Client, msg mqtt.Message) {
		var req wire.Request
		if wire.DecodeRequest(msg.Payload(), &req) != nil {
			return
		}
		resp := wire.Response{RunID: req.RunID, ClientID: req.ClientID, Seq: req.Seq, Intended: req.Intended}
		c.Publish(string(req.ReplyTopic), 0, false, wire.AppendResponse(nil, &resp))
		n.Add(1)
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("forger subscribe: %v", tok.Error())
	}
	return &n
}

// TestEMQXACLIsTheShippedFile: the Kubernetes ConfigMap carries the same
// rules as brokers/emqx-acl.conf (which Compose mounts).
func TestEMQXACLIsTheShippedFile(t *testing.T) {
	want, err := os.ReadFile("../brokers/emqx-acl.conf")
	if err != nil {
		t.Fatal(err)
	}
	y, err := os.ReadFile("../k8s/emqx-cluster.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// The ConfigMap's data block: "  acl.conf: |" then lines indented by four.
	s := string(y)
	i := strings.Index(s, "  acl.conf: |\n")
	if i < 0 {
		t.Fatal("k8s/emqx-cluster.yaml has no acl.conf in a ConfigMap")
	}
	var got strings.Builder
	for _, line := range strings.Split(s[i+len("  acl.conf: |\n"):], "\n") {
		if line != "" && !strings.HasPrefix(line, "    ") {
			break
		}
		got.WriteString(strings.TrimPrefix(line, "    ") + "\n")
	}
	if strings.TrimSpace(got.String()) != strings.TrimSpace(string(want)) {
		t.Errorf("the ConfigMap's acl.conf differs from brokers/emqx-acl.conf:\n%s", got.String())
	}
}
