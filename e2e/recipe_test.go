package e2e

import (
	"errors"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/brokertest"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/mosquitto"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/syncbuf"
)

// TestReadmeOwnBrokerRecipe: README's first section, "Test your own
// broker", is a recipe of at most five lines that works as written against
// a stock Mosquitto given only the tuning the section names (each line of
// it must be valid Mosquitto configuration). The recipe runs in bash with
// the broker's URL for tcp://your-broker:1883, the built binaries for bin/,
// and a smaller load (fewer clients, a 1 s warm-up, 3 s in all): the worker
// answers, the report is printed, and the SLO passes.
func TestReadmeOwnBrokerRecipe(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := strings.Split(string(b), "\n")
	for _, l := range readme {
		if strings.HasPrefix(l, "## ") {
			if l != "## Test your own broker" {
				t.Fatalf("README's first section is %q, want the recipe, \"## Test your own broker\"", l)
			}
			break
		}
	}
	section := readmeSection(t, readme, "## Test your own broker")
	var recipe []string
	in := false
	for _, l := range section {
		switch {
		case strings.HasPrefix(l, "```"):
			in = !in
		case in:
			recipe = append(recipe, l)
		}
		if !in && len(recipe) > 0 {
			break
		}
	}
	if len(recipe) == 0 || len(recipe) > 5 {
		t.Fatalf("the recipe has %d lines, want 1 to 5:\n%s", len(recipe), strings.Join(recipe, "\n"))
	}
	text := strings.Join(section, " ")
	var tuning []string
	for _, key := range []string{"set_tcp_nodelay", "max_queued_messages"} {
		m := regexp.MustCompile("`(" + key + " [^`]+)`").FindStringSubmatch(text)
		if m == nil {
			t.Fatalf("the section does not give Mosquitto's %s line", key)
		}
		tuning = append(tuning, m[1])
	}

	// A stock Mosquitto: a listener, anonymous clients, and the README's tuning.
	addr := brokertest.FreeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(port)
	m, err := mosquitto.StartWithConfig(t.TempDir(), "listener "+port+" 127.0.0.1\nallow_anonymous true\n"+strings.Join(tuning, "\n")+"\n", p)
	if errors.Is(err, mosquitto.ErrNotInstalled) {
		brokertest.Unavailable(t, "mosquitto not installed (apt-get install -y mosquitto; .ci/run installs it)")
	}
	if err != nil {
		t.Fatalf("Mosquitto with the README's tuning %q: %v", tuning, err)
	}
	t.Cleanup(m.Stop)

	var script []string
	for _, l := range recipe {
		if strings.HasPrefix(strings.TrimSpace(l), "make build") {
			continue // built by TestMain
		}
		l = strings.ReplaceAll(l, "tcp://your-broker:1883", m.URL())
		l = strings.ReplaceAll(l, "bin/", binDir+"/")
		l = regexp.MustCompile(`VIRTUAL_CLIENTS=\d+`).ReplaceAllString(l, "VIRTUAL_CLIENTS=2000")
		l = regexp.MustCompile(`WARMUP=\S+`).ReplaceAllString(l, "WARMUP=1s")
		l = regexp.MustCompile(`DURATION=\S+`).ReplaceAllString(l, "DURATION=3s")
		script = append(script, l)
	}
	cmd := exec.Command("bash", "-c", strings.Join(script, "\n"))
	cmd.Env = append(os.Environ(), "HTTP_ADDR="+brokertest.FreeAddr(t), "METRICS_ADDR="+brokertest.FreeAddr(t), "PROGRESS_INTERVAL=0")
	var out syncbuf.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }) // the worker, if kill %1 missed it
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("the recipe failed: %v\n%s\n%s", err, strings.Join(script, "\n"), tail(out.String(), 4000))
		}
	case <-time.After(brokertest.Patience):
		t.Fatalf("the recipe did not end\n%s", tail(out.String(), 4000))
	}
	for _, want := range []string{"=== mqtt-rr-bench loadgen report", "SLO  PASSED", "worker running"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the recipe's output lacks %q:\n%s", want, tail(out.String(), 4000))
		}
	}
	// (A warning about the loadgen's own lag may come on a busy machine.)
	for _, bad := range []string{"no response at all", "unknown and", "another loadgen"} {
		if strings.Contains(out.String(), bad) {
			t.Errorf("the recipe's report warns %q:\n%s", bad, tail(out.String(), 4000))
		}
	}
}
