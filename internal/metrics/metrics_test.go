package metrics

import (
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
