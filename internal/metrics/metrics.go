// Package metrics holds what the Prometheus metrics of both binaries share:
// the namespace, the build_info gauge, collectors that read an engine's own
// counters when scraped (so no hot path touches Prometheus), and the
// connection event counters both pools feed from mqttconn's OnState.
// Latency histograms are exported by latency.Collector; the HTTP side is
// package serve.
package metrics

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// Namespace of every metric of both binaries: mqttrr_{loadgen,worker}_*.
const Namespace = "mqttrr"

// Counter is a counter read from f at scrape time.
func Counter(subsystem, name, help string, labels prometheus.Labels, f func() uint64) prometheus.Collector {
	return prometheus.NewCounterFunc(prometheus.CounterOpts{
		Namespace: Namespace, Subsystem: subsystem, Name: name, Help: help, ConstLabels: labels,
	}, func() float64 { return float64(f()) })
}

// Gauge is a gauge read from f at scrape time.
func Gauge(subsystem, name, help string, labels prometheus.Labels, f func() float64) prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: Namespace, Subsystem: subsystem, Name: name, Help: help, ConstLabels: labels,
	}, f)
}

// ConnEvents counts the state changes of a pool's connections: State is
// mqttconn.Options.OnState (or called from it).
type ConnEvents struct {
	connects, losses, reconnects atomic.Uint64
	everUp                       []atomic.Bool // per connection: up at least once
	closing                      atomic.Bool
}

// NewConnEvents counts for a pool of n connections.
func NewConnEvents(n int) *ConnEvents { return &ConnEvents{everUp: make([]atomic.Bool, n)} }

// State counts connection i going up (connected and subscribed) or down. A
// connection that goes down once Closing was called is not lost.
func (c *ConnEvents) State(i int, up bool) {
	switch {
	case up:
		c.connects.Add(1)
		if i >= 0 && i < len(c.everUp) && c.everUp[i].Swap(true) {
			c.reconnects.Add(1)
		}
	case !c.closing.Load():
		c.losses.Add(1)
	}
}

// Closing marks the end of the pool's use: connections going down from now
// on are closed, not lost.
func (c *ConnEvents) Closing() { c.closing.Store(true) }

// Connects, Losses and Reconnects return the counts.
func (c *ConnEvents) Connects() uint64   { return c.connects.Load() }
func (c *ConnEvents) Losses() uint64     { return c.losses.Load() }
func (c *ConnEvents) Reconnects() uint64 { return c.reconnects.Load() }

// Collectors are the three counters of subsystem, plus the configured
// connection count (gauge "connections") when withCount.
func (c *ConnEvents) Collectors(subsystem string, withCount bool) []prometheus.Collector {
	out := []prometheus.Collector{
		Counter(subsystem, "connects_total", "MQTT connections made (connected and subscribed), the first ones included.", nil, c.Connects),
		Counter(subsystem, "connection_losses_total", "MQTT connections lost while in use (closing at the end is not a loss).", nil, c.Losses),
		Counter(subsystem, "reconnects_total", "MQTT connections made again after a loss.", nil, c.Reconnects),
	}
	if withCount {
		out = append(out, Gauge(subsystem, "connections", "MQTT connections configured (CONNECTIONS).", nil, func() float64 { return float64(len(c.everUp)) }))
	}
	return out
}
