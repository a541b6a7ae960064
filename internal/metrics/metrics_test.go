package metrics

import (
	"runtime"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestConnEvents(t *testing.T) {
	c := NewConnEvents(2)
	for _, s := range []struct {
		i  int
		up bool
	}{{0, true}, {1, true}, {1, false}, {1, true}, {7, true}} {
		c.State(s.i, s.up)
	}
	c.Closing()
	c.State(0, false) // closing: not a loss
	if c.Connects() != 4 || c.Losses() != 1 || c.Reconnects() != 1 {
		t.Errorf("connects %d losses %d reconnects %d; want 4, 1, 1", c.Connects(), c.Losses(), c.Reconnects())
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(c.Collectors("worker", true)...)
	want := `
# HELP mqttrr_worker_connection_losses_total MQTT connections lost while in use (closing at the end is not a loss).
# TYPE mqttrr_worker_connection_losses_total counter
mqttrr_worker_connection_losses_total 1
# HELP mqttrr_worker_connections MQTT connections configured (CONNECTIONS).
# TYPE mqttrr_worker_connections gauge
mqttrr_worker_connections 2
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "mqttrr_worker_connection_losses_total", "mqttrr_worker_connections"); err != nil {
		t.Error(err)
	}
}

// TestBuildInfo: one series of value 1 with version, revision and Go
// version, named after the binary.
func TestBuildInfo(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(BuildInfo("loadgen"))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if len(mfs) != 1 || mfs[0].GetName() != "mqttrr_loadgen_build_info" || len(mfs[0].Metric) != 1 {
		t.Fatalf("gathered %v", mfs)
	}
	m := mfs[0].Metric[0]
	labels := map[string]string{}
	for _, l := range m.Label {
		labels[l.GetName()] = l.GetValue()
	}
	if m.GetGauge().GetValue() != 1 || labels["version"] == "" || labels["revision"] == "" || labels["go_version"] != runtime.Version() {
		t.Errorf("build info %v = %v", labels, m.GetGauge().GetValue())
	}
}
