package engine_test

import (
	"context"
	"testing"
	"time"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/brokertest"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/mqttconn"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/worker-v2/internal/config"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/worker-v2/internal/engine"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/worker-v2/internal/workertest"
)

// running is an engine whose Run runs in a goroutine.
type running struct {
	*engine.Engine
	mem    *workertest.Transport // the in-memory transport (startMem)
	cancel context.CancelFunc
	errc   chan error
}

// start runs an engine for c that connects with dial (nil: a real broker)
// and waits until it is ready.
func start(t *testing.T, c *config.Config, dial mqttconn.Dialer) *running {
	t.Helper()
	e := engine.New(workertest.Resolve(t, c), dial, workertest.Logger(t))
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{Engine: e, cancel: cancel, errc: make(chan error, 1)}
	go func() { r.errc <- e.Run(ctx) }()
	select {
	case <-e.Ready():
	case err := <-r.errc:
		t.Fatalf("Run returned before ready: %v", err)
	case <-time.After(brokertest.Patience):
		cancel()
		t.Fatalf("engine not ready after %v", brokertest.Patience)
	}
	return r
}

// startMem runs an engine for c over an in-memory transport.
func startMem(t *testing.T, c *config.Config) *running {
	t.Helper()
	d := new(workertest.Dialer)
	r := start(t, c, d.Dial)
	r.mem = d.Transport()
	return r
}

// stop cancels the engine and waits for Run to return nil.
func (r *running) stop(t *testing.T) {
	t.Helper()
	r.cancel()
	if err := <-r.errc; err != nil {
		t.Errorf("Run = %v, want nil", err)
	}
}

// deliver delivers requests first..first+n-1 on connection conn.
func (r *running) deliver(t *testing.T, conn, first, n int) {
	t.Helper()
	for i := first; i < first+n; i++ {
		if !r.mem.Deliver(conn, workertest.Message(t, i)) {
			t.Fatalf("request %d not delivered", i)
		}
	}
}

// written returns the replies written on every connection.
func (r *running) written() int {
	n := 0
	for i := range r.mem.Len() {
		n += len(r.mem.C(i).Written())
	}
	return n
}

func checkIdentity(t *testing.T, s engine.Stats) {
	t.Helper()
	if s.Received != s.Accounted() {
		t.Errorf("received %d != processed %d + dropped_full %d + malformed %d + reply_failed %d + abandoned %d + queued %d + in flight %d + blocked %d",
			s.Received, s.Processed, s.DroppedFull, s.Malformed, s.ReplyFailed, s.Abandoned, s.QueueDepth, s.InFlight, s.Blocked)
	}
}
