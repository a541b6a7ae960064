// Package broker owns the embedded MQTT broker (mochi-mqtt/server/v2) used by
// `make run` and by the tests (through brokertest.Start), so a benchmark runs
// with nothing installed but Go.
//
// Start fails loudly when the address is taken: there is never a silent
// fallback to another port or to a broker already running on the machine.
// Bind "127.0.0.1:0" to get a free port, then read it back with Addr.
package broker

import (
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Options configures the embedded broker.
type Options struct {
	// Addr is the TCP listen address, e.g. "127.0.0.1:1883" or "127.0.0.1:0".
	Addr string
	// WritesPending is the outbound queue of one client in messages (mochi's
	// MaximumClientWritesPending); beyond it messages to that client are dropped
	// and counted in Dropped. Default 65536.
	WritesPending int
	// Logger for broker events; nil discards them.
	Logger *slog.Logger
}

// Broker is a running embedded broker.
type Broker struct {
	srv     *mqtt.Server
	addr    string
	dropped atomic.Int64
	once    sync.Once
}

// Start starts a broker listening on o.Addr. It returns an error when the
// address cannot be bound.
func Start(o Options) (*Broker, error) {
	if o.WritesPending <= 0 {
		o.WritesPending = 65536
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumClientWritesPending = int32(o.WritesPending)
	srv := mqtt.New(&mqtt.Options{
		Capabilities:             caps,
		Logger:                   log,
		ClientNetWriteBufferSize: 64 << 10,
		ClientNetReadBufferSize:  64 << 10,
		SysTopicResendInterval:   0,
	})
	b := &Broker{srv: srv}
	if err := srv.AddHook(new(auth.AllowHook), nil); err != nil {
		return nil, fmt.Errorf("embedded broker: %w", err)
	}
	if err := srv.AddHook(&dropHook{b: b}, nil); err != nil {
		return nil, fmt.Errorf("embedded broker: %w", err)
	}
	tcp := &tcpListener{id: "tcp", addr: o.Addr, srv: srv, log: log}
	if err := srv.AddListener(tcp); err != nil {
		_ = srv.Close()
		return nil, fmt.Errorf("embedded broker: listen on %s: %w", o.Addr, err)
	}
	b.addr = tcp.Address()
	if err := srv.Serve(); err != nil {
		_ = srv.Close()
		return nil, fmt.Errorf("embedded broker: serve: %w", err)
	}
	return b, nil
}

// Addr returns the bound address, e.g. "127.0.0.1:41234".
func (b *Broker) Addr() string { return b.addr }

// URL returns the broker URL for clients, e.g. "tcp://127.0.0.1:41234".
func (b *Broker) URL() string { return "tcp://" + b.addr }

// Dropped returns how many messages the broker dropped because a client's
// outbound queue was full.
func (b *Broker) Dropped() int64 { return b.dropped.Load() }

// Close stops the broker and disconnects its clients. It is idempotent.
func (b *Broker) Close() error {
	var err error
	b.once.Do(func() { err = b.srv.Close() })
	return err
}

// tcpListener is a mochi listener on TCP whose Close neither deadlocks nor
// races with clients that are still connecting. mochi v2.7.9's own
// listeners.TCP has three faults there:
//   - its client closer (Server.closeListenerClients) calls
//     Clients.GetByListener, which takes the clients' read lock twice (it calls
//     Len under RLock): a client attaching at that moment (Clients.Delete
//     waits for the write lock between the two) blocks both forever;
//   - Server.Close waits on Listeners.ClientsWg while an accepted connection
//     may still call ClientsWg.Add from zero (a WaitGroup misuse);
//   - its accept loop assigns every connection's result to one shared
//     variable from many goroutines.
//
// Here each accepted connection is counted in ClientsWg before it is handed
// over, under the same lock that Close takes to stop accepting, so the count
// never rises from zero once Close has begun; the clients are read with one
// GetAll (a single read lock).
type tcpListener struct {
	id, addr string
	srv      *mqtt.Server
	log      *slog.Logger

	mu      sync.Mutex
	ln      net.Listener
	closing bool
}

func (l *tcpListener) ID() string       { return l.id }
func (l *tcpListener) Protocol() string { return "tcp" }

func (l *tcpListener) Address() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ln != nil {
		return l.ln.Addr().String()
	}
	return l.addr
}

func (l *tcpListener) Init(*slog.Logger) error {
	ln, err := net.Listen("tcp", l.addr)
	if err != nil {
		return err
	}
	l.mu.Lock()
	l.ln = ln
	l.mu.Unlock()
	return nil
}

func (l *tcpListener) Serve(establish listeners.EstablishFn) {
	l.mu.Lock()
	ln := l.ln
	l.mu.Unlock()
	for {
		conn, err := ln.Accept()
		if err != nil {
			return // closed
		}
		l.mu.Lock()
		if l.closing {
			l.mu.Unlock()
			_ = conn.Close()
			continue
		}
		l.srv.Listeners.ClientsWg.Add(1)
		l.mu.Unlock()
		go func() {
			defer l.srv.Listeners.ClientsWg.Done()
			if err := establish(l.id, conn); err != nil {
				l.log.Debug("embedded broker: connection ended", "error", err)
			}
		}()
	}
}

func (l *tcpListener) Close(listeners.CloseFn) {
	l.mu.Lock()
	if l.closing {
		l.mu.Unlock()
		return
	}
	l.closing = true
	ln := l.ln
	l.mu.Unlock()
	if ln != nil {
		_ = ln.Close()
	}
	for _, cl := range l.srv.Clients.GetAll() {
		if cl.Net.Listener == l.id && !cl.Closed() {
			_ = l.srv.DisconnectClient(cl, packets.ErrServerShuttingDown)
		}
	}
}

type dropHook struct {
	mqtt.HookBase
	b *Broker
}

func (h *dropHook) ID() string { return "drop-counter" }

func (h *dropHook) Provides(x byte) bool { return x == mqtt.OnPublishDropped }

func (h *dropHook) OnPublishDropped(_ *mqtt.Client, _ packets.Packet) { h.b.dropped.Add(1) }
