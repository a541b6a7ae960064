package claim_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/brokertest"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/mqttconn"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/syncbuf"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/loadgen-v2/internal/claim"
)

// options are a claim's options for run on instance "twin" against url.
func options(url string, version byte, run string, log *syncbuf.Buffer) claim.Options {
	return claim.Options{Instance: "twin", RunID: run, Window: time.Hour, ClientID: "claim-" + run,
		MQTT: mqttconn.Options{Broker: url, ProtocolVersion: version},
		Log:  slog.New(slog.NewTextHandler(log, nil))}
}

// TestClaimConflictBothWays: a run claims its instance; a second run with
// the same instance finds the first one's claim when Take returns (before
// it has connected anything else), and the first one learns of the second
// as it claims. The last to release clears the topic; the claims carry run
// id, start and end. MQTT 3.1.1 and 5.
func TestClaimConflictBothWays(t *testing.T) {
	for _, v := range []byte{4, 5} {
		t.Run(mqttconn.VersionName(v), func(t *testing.T) {
			ignore := goleak.IgnoreCurrent()
			t.Cleanup(func() { goleak.VerifyNone(t, ignore) }) // after the broker's cleanup
			b := brokertest.Start(t)
			var logA, logB syncbuf.Buffer
			seenByA := make(chan claim.Record, 1)
			oa := options(b.URL(), v, "aaaa0001", &logA)
			oa.OnConflict = func(r claim.Record) { seenByA <- r }
			a := claim.Take(context.Background(), oa)
			if !a.Active() || len(a.Conflicts()) != 0 {
				t.Fatalf("first claim: active %v, conflicts %v\n%s", a.Active(), a.Conflicts(), logA.String())
			}
			var held claim.Record
			if err := json.Unmarshal(brokertest.Retained(t, b.URL(), claim.Topic("twin")), &held); err != nil || held.RunID != "aaaa0001" || held.Until.IsZero() {
				t.Fatalf("retained claim %+v, %v: want run aaaa0001 with its end", held, err)
			}

			bo := options(b.URL(), v, "bbbb0002", &logB)
			bo.Window = 0 // until stopped
			second := claim.Take(context.Background(), bo)
			if c := second.Conflicts(); len(c) != 1 || c[0].RunID != "aaaa0001" {
				t.Fatalf("second claim's conflicts %v, want the first run's claim at once\n%s", c, logB.String())
			}
			if r := <-seenByA; r.RunID != "bbbb0002" || !r.Until.IsZero() || !strings.Contains(r.String(), "until stopped") {
				t.Errorf("the first run saw %v, want run bbbb0002 until stopped", r)
			}
			second.Release(time.Second)
			a.Release(time.Second) // the topic's last message was not its claim: left alone
			if p := brokertest.Retained(t, b.URL(), claim.Topic("twin")); p != nil {
				t.Errorf("after both released, the topic holds %q", p)
			}
			for _, l := range []string{logA.String(), logB.String()} {
				if strings.Contains(l, "skipped") {
					t.Errorf("a claim was skipped:\n%s", l)
				}
			}
		})
	}
}

// TestClaimAloneIsClearedAtTheEnd: one run, no conflict, and nothing left on
// the topic after Release.
func TestClaimAloneIsClearedAtTheEnd(t *testing.T) {
	b := brokertest.Start(t)
	var log syncbuf.Buffer
	c := claim.Take(context.Background(), options(b.URL(), 4, "cccc0003", &log))
	if !c.Active() || len(c.Conflicts()) != 0 {
		t.Fatalf("active %v, conflicts %v\n%s", c.Active(), c.Conflicts(), log.String())
	}
	c.Release(time.Second)
	c.Release(time.Second) // idempotent
	if p := brokertest.Retained(t, b.URL(), claim.Topic("twin")); p != nil {
		t.Errorf("after Release the topic holds %q", p)
	}
}

// TestExpiredOrForeignClaimIsNoConflict: a retained claim whose run has
// ended by its own window, or a payload that is no claim, is replaced
// without a conflict.
func TestExpiredOrForeignClaimIsNoConflict(t *testing.T) {
	old, _ := json.Marshal(claim.Record{RunID: "dead0004", Started: time.Now().Add(-2 * time.Hour), Until: time.Now().Add(-time.Hour)})
	for name, payload := range map[string][]byte{"expired": old, "not a claim": []byte("{\"hello\":1}"), "not JSON": {0xff, 0x00}} {
		t.Run(name, func(t *testing.T) {
			b := brokertest.Start(t)
			publishRetained(t, b.URL(), claim.Topic("twin"), payload)
			var log syncbuf.Buffer
			c := claim.Take(context.Background(), options(b.URL(), 4, "eeee0005", &log))
			defer c.Release(time.Second)
			if !c.Active() || len(c.Conflicts()) != 0 {
				t.Errorf("active %v, conflicts %v\n%s", c.Active(), c.Conflicts(), log.String())
			}
		})
	}
}

// TestClaimSkippedWhereRetainIsRefused: Mosquitto with retain_available
// false announces it to MQTT 5 clients (Retain Available = 0) and drops a
// 3.1.1 client that publishes a retained message; an ACL that does not grant
// the claim topic keeps the claim from being read. Each skips the claim with
// an INFO line naming the cause, and Take returns: the run goes on.
func TestClaimSkippedWhereRetainIsRefused(t *testing.T) {
	aclFile := t.TempDir() + "/acl"
	if err := os.WriteFile(aclFile, []byte("topic readwrite req/#\ntopic readwrite resp/#\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	acl := "acl_file " + aclFile + "\n"
	if os.Geteuid() == 0 {
		acl = "user root\n" + acl // else Mosquitto drops to its own user, who cannot read the test's directory
	}
	for _, tc := range []struct {
		name, conf string
		v          byte
		say        string
	}{
		{"retain unavailable, MQTT 5", "retain_available false\n", 5, "keeps no retained messages"},
		{"retain unavailable, MQTT 3.1.1", "retain_available false\n", 4, "a broker that refuses retained messages closes it"},
		{"ACL without the claim topic", acl, 4, "allow mqtt-rr-bench/instance/# for the loadgen"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := brokertest.StartMosquitto(t, tc.conf)
			var log syncbuf.Buffer
			o := options(m.URL(), tc.v, "ffff0006", &log)
			o.EchoWait = 300 * time.Millisecond // the echo cannot come: do not wait long for it
			c := claim.Take(context.Background(), o)
			c.Release(time.Second)
			if len(c.Conflicts()) != 0 || !strings.Contains(log.String(), "level=INFO") || !strings.Contains(log.String(), tc.say) {
				t.Errorf("conflicts %v; log lacks an INFO line saying %q:\n%s", c.Conflicts(), tc.say, log.String())
			}
			if strings.Contains(log.String(), "level=WARN") || strings.Contains(log.String(), "level=ERROR") {
				t.Errorf("a skipped claim is not a warning:\n%s", log.String())
			}
		})
	}
}

// TestClaimSkippedWithoutBroker: nothing listens: Take returns at once with
// the claim skipped.
func TestClaimSkippedWithoutBroker(t *testing.T) {
	var log syncbuf.Buffer
	c := claim.Take(context.Background(), options("tcp://"+brokertest.FreeAddr(t), 4, "0000aaaa", &log))
	if c.Active() || !strings.Contains(log.String(), "instance claim skipped: no connection for it") {
		t.Errorf("active %v\n%s", c.Active(), log.String())
	}
	c.Release(time.Second)
}

func publishRetained(t *testing.T, url, topic string, payload []byte) {
	t.Helper()
	ctl, err := mqttconn.DialControl(context.Background(), mqttconn.Options{Broker: url}, mqttconn.ControlOptions{ClientID: "seed"})
	if err != nil {
		t.Fatal(err)
	}
	defer ctl.Close()
	if err := ctl.Publish(context.Background(), topic, payload, true); err != nil {
		t.Fatal(fmt.Errorf("seed the retained claim: %w", err))
	}
}
