package pahoclient

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/brokertest"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/envconf"
)

// TestConnectAndSubscribe: a client connects to a real broker and its
// subscription is waited for; a broker that is not there is an error, and so
// is a password file that cannot be read.
func TestConnectAndSubscribe(t *testing.T) {
	b := brokertest.Start(t)
	d, err := NewDialer(b.URL(), envconf.Security{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := d.Connect("pahoclient-test")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Disconnect(0)
	if err := Wait(c.Subscribe("t/+", 1, nil)); err != nil {
		t.Errorf("subscribe: %v", err)
	}

	down, err := NewDialer("tcp://127.0.0.1:9", envconf.Security{}) // discard port: nothing listens
	if err != nil {
		t.Fatal(err)
	}
	if _, err := down.Connect("pahoclient-test-down"); err == nil {
		t.Error("connected to a port nothing listens on")
	}

	missing := filepath.Join(t.TempDir(), "none")
	if _, err := NewDialer(b.URL(), envconf.Security{PasswordFile: missing}); !errors.Is(err, envconf.ErrInvalid) {
		t.Errorf("unreadable MQTT_PASSWORD_FILE: %v, want ErrInvalid", err)
	}
}
