package main

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/brokertest"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/wire"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
	binDir    string
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "worker-v2-test")
	if err != nil {
		panic(err)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// binary builds worker-v2 once per test run.
func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		binPath = filepath.Join(binDir, "worker-v2")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = errors.New(string(out))
		}
	})
	if buildErr != nil {
		t.Fatalf("go build: %v", buildErr)
	}
	return binPath
}

func command(t *testing.T, env []string, args ...string) *exec.Cmd {
	cmd := exec.Command(binary(t), args...)
	// Later entries win: the test's values override the environment's.
	cmd.Env = append(os.Environ(), "LOG_LEVEL=info", "HTTP_ADDR=127.0.0.1:0")
	cmd.Env = append(cmd.Env, env...)
	return cmd
}

func exitCode(t *testing.T, err error) int {
	t.Helper()
	if err == nil {
		return 0
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("run: %v", err)
	}
	return ee.ExitCode()
}

func TestHelp(t *testing.T) {
	for _, arg := range []string{"-h", "--help"} {
		var stdout bytes.Buffer
		cmd := command(t, nil, arg)
		cmd.Stdout = &stdout
		if code := exitCode(t, cmd.Run()); code != 0 {
			t.Errorf("%s: exit %d, want 0", arg, code)
		}
		for _, v := range []string{"MIN_WORKERS", "MAX_WORKERS", "MQTT_BROKER", "SHARED_SUBSCRIPTION", "DROP_ON_FULL", "WRITE_LINGER"} {
			if !strings.Contains(stdout.String(), v) {
				t.Errorf("%s output lacks %s:\n%s", arg, v, stdout.String())
			}
		}
	}
}

// TestInvalidConfigExits2: a configuration main refuses exits 2 with the
// problem named, before anything listens or connects.
func TestInvalidConfigExits2(t *testing.T) {
	cases := []struct {
		name string
		env  []string
		args []string
		want []string
	}{
		{"min above max", []string{"MIN_WORKERS=50", "MAX_WORKERS=10"}, nil, []string{"MIN_WORKERS=50", "MAX_WORKERS=10"}},
		{"unknown mode", []string{"MODE=turbo"}, nil, []string{"MODE=turbo"}},
		{"bad broker", []string{"MQTT_BROKER=http://x"}, nil, []string{"MQTT_BROKER=http://x"}},
		{"not a number", []string{"QUEUE_CAP=lots"}, nil, []string{"QUEUE_CAP"}},
		{"unknown argument", nil, []string{"--mode=cpu"}, []string{"--mode=cpu", "-h"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			// A broker nobody listens on: exiting 2 must happen before connecting.
			cmd := command(t, append([]string{"MQTT_BROKER=tcp://127.0.0.1:1"}, tc.env...), tc.args...)
			cmd.Stderr = &stderr
			// Exit 2, not 1: refused before connecting (a failed connect exits 1).
			if code := exitCode(t, cmd.Run()); code != 2 {
				t.Errorf("exit %d, want 2; stderr:\n%s", code, stderr.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr.String())
				}
			}
			if strings.Contains(stderr.String(), "listening") {
				t.Errorf("listened with an invalid configuration:\n%s", stderr.String())
			}
		})
	}
}

// proc is a running worker-v2 with its stderr log lines.
type proc struct {
	cmd   *exec.Cmd
	lines chan string
	mu    sync.Mutex
	log   strings.Builder
	done  chan error
}

func startProc(t *testing.T, env ...string) *proc {
	t.Helper()
	cmd := command(t, env)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, lines: make(chan string, 1000), done: make(chan error, 1)}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			p.mu.Lock()
			p.log.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
			select {
			case p.lines <- sc.Text():
			default:
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
		p.done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		if t.Failed() {
			p.mu.Lock()
			t.Logf("worker-v2 log:\n%s", p.log.String())
			p.mu.Unlock()
		}
	})
	return p
}

// waitLine returns the first log line containing s.
func (p *proc) waitLine(t *testing.T, s string) string {
	t.Helper()
	timeout := time.After(15 * time.Second)
	for {
		select {
		case l := <-p.lines:
			if strings.Contains(l, s) {
				return l
			}
		case <-timeout:
			t.Fatalf("no log line with %q in 15s", s)
		}
	}
}

func (p *proc) wait(t *testing.T) int {
	t.Helper()
	select {
	case err := <-p.done:
		return exitCode(t, err)
	case <-time.After(15 * time.Second):
		t.Fatal("worker-v2 did not exit in 15s")
	}
	return -1
}

var addrRE = regexp.MustCompile(`http_addr=(\S+)`)

func TestSIGTERMDrainsAndExits0(t *testing.T) {
	b := brokertest.Start(t)
	p := startProc(t, "MQTT_BROKER="+b.URL(), "CONNECTIONS=2", "MIN_WORKERS=2")
	addr := addrRE.FindStringSubmatch(p.waitLine(t, "http listening"))[1]
	p.waitLine(t, "worker running")
	if code, body, err := brokertest.Get("http://" + addr + "/health"); err != nil || code != http.StatusOK {
		t.Errorf("/health = %d %q %v", code, body, err)
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	p.waitLine(t, "drained")
	if code := p.wait(t); code != 0 {
		t.Errorf("exit %d after SIGTERM, want 0", code)
	}
}

// TestSecondSignalExits130: a drain stuck on a long sleep is cut short by a
// second SIGINT.
func TestSecondSignalExits130(t *testing.T) {
	b := brokertest.Start(t)
	p := startProc(t, "MQTT_BROKER="+b.URL(), "CONNECTIONS=1", "MIN_WORKERS=1", "MAX_WORKERS=1",
		"MODE=sleep", "SLEEP_MS=60000", "SHUTDOWN_TIMEOUT=60s")
	addr := addrRE.FindStringSubmatch(p.waitLine(t, "http listening"))[1]
	p.waitLine(t, "worker running")

	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(b.URL()).SetClientID("main-test-requester"))
	if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	defer c.Disconnect(100)
	req, _ := wire.AppendRequest(nil, &wire.Request{RunID: 1, ReplyTopic: []byte("resp/x/0")}, 0)
	if tok := c.Publish("req/0", 0, false, req); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("publish: %v", tok.Error())
	}
	brokertest.WaitFor(t, "the request to reach a worker", func() bool {
		var s struct {
			InFlight int `json:"in_flight"`
		}
		return brokertest.FetchJSON("http://"+addr+"/stats", &s) == nil && s.InFlight == 1
	})

	if err := p.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	p.waitLine(t, "draining")
	if err := p.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(t); code != 130 {
		t.Errorf("exit %d after a second SIGINT, want 130", code)
	}
}
