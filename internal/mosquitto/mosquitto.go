// Package mosquitto owns a real Mosquitto broker run for tests (most through
// brokertest.StartMosquitto): on a free loopback port, with its own temporary
// configuration (the benchmark settings of BenchConfig, which
// scripts/benchmark.sh writes for its own Mosquitto too), stopped again at
// the end. It can kill and restart the broker on the same port to inject
// faults.
package mosquitto

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/freeport"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/syncbuf"
)

// ErrNotInstalled is returned when no mosquitto binary is on PATH (or in /usr/sbin).
var ErrNotInstalled = errors.New("mosquitto binary not found (apt-get install -y mosquitto)")

// BenchConfig is the configuration that benchmark runs need: without
// set_tcp_nodelay QoS 1 round trips stall ~40 ms (Nagle + delayed ACK), and
// with the default max_queued_messages (1000) QoS 0 messages to a busy client
// are dropped silently.
const BenchConfig = `allow_anonymous true
set_tcp_nodelay true
max_queued_messages 1000000
max_inflight_messages 0
persistence false
`

// Broker is a running Mosquitto process.
type Broker struct {
	Port int
	conf string
	bin  string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	log  *syncbuf.Buffer
}

// Binary returns the path of the mosquitto binary.
func Binary() (string, error) {
	if p, err := exec.LookPath("mosquitto"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", ErrNotInstalled
}

// Start starts Mosquitto on a free loopback port with BenchConfig plus extra
// configuration lines (e.g. "max_queued_messages 10"), in dir (a temporary
// directory the caller removes). Listener lines are added by Start.
func Start(dir, extra string) (*Broker, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	return StartWithConfig(dir, fmt.Sprintf("listener %d 127.0.0.1\n%s%s\n", port, BenchConfig, extra), port)
}

// StartWithConfig starts Mosquitto with exactly conf (the caller writes the
// listeners, e.g. for TLS), waiting for port to accept connections.
func StartWithConfig(dir, conf string, port int) (*Broker, error) {
	bin, err := Binary()
	if err != nil {
		return nil, err
	}
	b := &Broker{Port: port, bin: bin, conf: filepath.Join(dir, "mosquitto.conf")}
	if err := os.WriteFile(b.conf, []byte(conf), 0o600); err != nil {
		return nil, err
	}
	return b, b.start()
}

func (b *Broker) start() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	cmd := exec.Command(b.bin, "-c", b.conf)
	b.log = &syncbuf.Buffer{}
	cmd.Stdout, cmd.Stderr = b.log, b.log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start mosquitto: %w", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	b.cmd, b.done = cmd, done
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-done:
			return fmt.Errorf("mosquitto exited at start: %s", b.log.String())
		default:
		}
		c, err := net.DialTimeout("tcp", b.Addr(), 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	_ = cmd.Process.Kill()
	<-done
	return fmt.Errorf("mosquitto did not listen on %s within 10s: %s", b.Addr(), b.log.String())
}

// Addr returns "127.0.0.1:port".
func (b *Broker) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(b.Port)) }

// URL returns "tcp://127.0.0.1:port".
func (b *Broker) URL() string { return "tcp://" + b.Addr() }

// PID returns the broker's process id.
func (b *Broker) PID() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.cmd.Process.Pid
}

// Kill stops the broker with SIGKILL (a crash) and waits for it to exit.
func (b *Broker) Kill() {
	b.mu.Lock()
	cmd, done := b.cmd, b.done
	b.mu.Unlock()
	_ = cmd.Process.Kill()
	<-done
}

// Restart starts the broker again on the same port after Kill.
func (b *Broker) Restart() error { return b.start() }

// Stop terminates the broker (SIGTERM, then SIGKILL after 5 s). Idempotent.
func (b *Broker) Stop() {
	b.mu.Lock()
	cmd, done := b.cmd, b.done
	b.mu.Unlock()
	select {
	case <-done:
		return
	default:
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// Log returns what the broker printed.
func (b *Broker) Log() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.log.String()
}

// freePort returns a loopback port for the broker to listen on
// (freeport.Loopback: free now, bound by Mosquitto a moment later).
func freePort() (int, error) {
	addr, err := freeport.Loopback()
	if err != nil {
		return 0, err
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(port)
}
