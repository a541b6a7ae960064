package engine

import (
	"context"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/mqttconn"
)

// Transport is what the engine needs of its MQTT connections. *mqttconn.Pool
// implements it; tests drive the scheduler loop with a fake one under
// testing/synctest, and an MQTT 5 pool can slot in without touching the engine.
type Transport interface {
	// Conn returns connection i (0 ≤ i < CONNECTIONS).
	Conn(i int) mqttconn.Conn
	// Up returns how many connections are connected and subscribed.
	Up() int
	// Suspect returns how many connections wrote and heard nothing back for
	// longer than Options.SuspectAfter.
	Suspect() int
	// Close stops delivering to the handlers (waiting for one that runs),
	// reports unwritten requests to Options.OnUnsent and disconnects. No
	// handler runs after it returns.
	Close()
}

// Dialer connects a Transport with the engine's options: it calls
// o.OnMessage for every inbound message and o.OnUnsent for every request it
// accepted but could not write.
type Dialer func(ctx context.Context, o mqttconn.Options) (Transport, error)

// DialPool is the Dialer of the real connection pool.
func DialPool(ctx context.Context, o mqttconn.Options) (Transport, error) {
	p, err := mqttconn.Dial(ctx, o)
	if err != nil {
		return nil, err
	}
	return p, nil
}
