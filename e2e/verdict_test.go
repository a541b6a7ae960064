package e2e

import (
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/brokertest"
)

// TestSignalWhileConnectingGivesAReport: SIGTERM while the connections are
// still coming up (nothing listens on the broker's port) ends in the report
// of a run that sent nothing — all zero, "stopped before sending" — and the
// documented exit status (3: no success rate to hold to the default
// SLO_SUCCESS_RATE), not "context canceled" and exit 1.
func TestSignalWhileConnectingGivesAReport(t *testing.T) {
	broker, maddr := brokertest.FreeAddr(t), brokertest.FreeAddr(t)
	rf := filepath.Join(t.TempDir(), "report.json")
	lg := start(t, "loadgen-v2", loadgenEnv("tcp://"+broker, rf, "METRICS_ADDR="+maddr, "DURATION=0")...)
	brokertest.Await(t, "the loadgen connecting", 20*time.Millisecond, func() (bool, string) {
		var s struct{ Phase string }
		if err := brokertest.FetchJSON("http://"+maddr+"/stats", &s); err != nil {
			return false, err.Error()
		}
		return s.Phase == "connecting", s.Phase
	})
	_ = lg.cmd.Process.Signal(syscall.SIGTERM)
	if code := lg.wait(t, 30*time.Second); code != 3 {
		t.Fatalf("exit %d, want 3\nstdout:\n%s\nstderr:\n%s", code, lg.out.String(), tail(lg.errOut.String(), 3000))
	}
	out := lg.out.String()
	for _, want := range []string{"=== mqtt-rr-bench loadgen report", "stopped before sending", "SLO FAILED"} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(lg.errOut.String(), "loadgen failed") {
		t.Errorf("stderr says the run failed:\n%s", tail(lg.errOut.String(), 3000))
	}
	if r := readReport(t, rf); r.Scheduled != 0 || r.RequestsSent != 0 || !r.Balanced {
		t.Errorf("report %+v, want all zero and balanced", r)
	}
}
