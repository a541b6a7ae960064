package mqttconn

import "context"

// Transport is what an engine needs of its MQTT connections: both engines
// (loadgen-v2 and worker-v2) depend on this interface, never on *Pool, so
// their tests can drive them with an in-memory Transport. *Pool implements it
// for MQTT 3.1.1 and MQTT 5 alike.
type Transport interface {
	// Len returns the number of connections.
	Len() int
	// Conn returns connection i (0 ≤ i < Len()).
	Conn(i int) Conn
	// Up returns how many connections are connected and subscribed.
	Up() int
	// Suspect returns how many connections wrote and heard nothing back for
	// longer than Options.SuspectAfter.
	Suspect() int
	// Capabilities returns what the broker announced when the connections
	// connected (the first connection's record, with the lowest QoS granted
	// to any connection's subscriptions; zero before any connected).
	Capabilities() Capabilities
	// Unsubscribe removes every connection's subscriptions, waiting at most
	// until ctx ends; connections stay open so replies can still be sent.
	Unsubscribe(ctx context.Context) error
	// Close stops delivering to the handlers (waiting for one that runs),
	// reports unwritten messages to Options.OnUnsent and disconnects. No
	// handler runs after it returns. Idempotent.
	Close()
}

// Dialer connects a Transport with the given options: it calls o.OnMessage
// for every inbound message and o.OnUnsent for every message it accepted but
// could not write.
type Dialer func(ctx context.Context, o Options) (Transport, error)

// DialTransport is the Dialer of the real connection pool (Dial).
func DialTransport(ctx context.Context, o Options) (Transport, error) {
	p, err := Dial(ctx, o)
	if err != nil {
		return nil, err
	}
	return p, nil
}

var _ Transport = (*Pool)(nil)
