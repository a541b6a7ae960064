package brokertest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/syncbuf"
)

// NATS is a nats-server with its MQTT listener (NATS 2.9+: MQTT 3.1.1 only,
// no shared subscriptions, QoS 0 and 1), started by StartNATS.
type NATS struct {
	// Addr is the MQTT listener, "127.0.0.1:port".
	Addr string
	log  *syncbuf.Buffer
}

// URL returns "tcp://" + Addr.
func (n *NATS) URL() string { return "tcp://" + n.Addr }

// Log returns what the server printed.
func (n *NATS) Log() string { return n.log.String() }

// StartNATS starts nats-server with JetStream (the MQTT listener needs it)
// and an MQTT listener, on free loopback ports, and stops it when the test
// ends. It skips the test when nats-server is not installed (Debian package
// nats-server; CI installs it).
func StartNATS(t testing.TB) *NATS {
	t.Helper()
	bin, err := exec.LookPath("nats-server")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/nats-server"); serr != nil {
			t.Skip("nats-server not installed: apt-get install -y nats-server (CI installs it)")
		}
		bin = "/usr/sbin/nats-server"
	}
	dir := t.TempDir()
	n := &NATS{Addr: FreeAddr(t), log: &syncbuf.Buffer{}}
	conf := fmt.Sprintf("server_name: rrtest\nlisten: %q\nhttp: 0\njetstream {\n  store_dir: %q\n}\nmqtt {\n  listen: %q\n}\n",
		FreeAddr(t), filepath.Join(dir, "js"), n.Addr)
	path := filepath.Join(dir, "nats.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-c", path)
	cmd.Stdout, cmd.Stderr = n.log, n.log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start nats-server: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	Await(t, "nats-server listening for MQTT on "+n.Addr, 20*time.Millisecond, func() (bool, string) {
		select {
		case <-done:
			t.Fatalf("nats-server exited at start: %s", n.log.String())
		default:
		}
		c, err := net.DialTimeout("tcp", n.Addr, 200*time.Millisecond)
		if err != nil {
			return false, err.Error()
		}
		c.Close()
		return true, ""
	})
	return n
}
