// Package broker owns the embedded MQTT broker (mochi-mqtt/server/v2) used by
// `make run` and by the tests, so a benchmark runs with nothing installed but Go.
//
// Start fails loudly when the address is taken: there is never a silent
// fallback to another port or to a broker already running on the machine.
// Bind "127.0.0.1:0" to get a free port, then read it back with Addr.
package broker

import (
	"bytes"
	"fmt"
	"log/slog"
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
	// Logger for broker events; default discards info-level chatter.
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
		log = slog.New(slog.NewTextHandler(discard{}, &slog.HandlerOptions{Level: slog.LevelError}))
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
	tcp := listeners.NewTCP(listeners.Config{ID: "tcp", Address: o.Addr})
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

type dropHook struct {
	mqtt.HookBase
	b *Broker
}

func (h *dropHook) ID() string { return "drop-counter" }

func (h *dropHook) Provides(x byte) bool {
	return bytes.Contains([]byte{mqtt.OnPublishDropped}, []byte{x})
}

func (h *dropHook) OnPublishDropped(_ *mqtt.Client, _ packets.Packet) { h.b.dropped.Add(1) }

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
