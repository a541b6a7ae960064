// Package workertest holds what the worker's tests share: an in-memory
// mqttconn.Transport for tests where a broker is not what is tested (the
// test delivers requests to a connection as a broker would, with
// Transport.Deliver, and reads what each connection wrote, Conn.Written; a
// connection can be stalled, reset, taken down or made suspect), requests
// in loadgen-v2's envelope, a test configuration and a logger into the test
// log. It is imported by tests only.
package workertest

import (
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/mqttconn"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/wire"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/worker-v2/internal/config"
)

var clientSeq atomic.Int64

// Config returns a small, fast configuration against brokerURL: 2
// connections, 2..4 workers, a queue of 1000, a 100 ms autoscaler interval,
// a 5 s drain and a client id prefix of its own.
func Config(brokerURL string) *config.Config {
	c := config.Defaults()
	c.Broker = brokerURL
	c.Connections = 2
	c.MinWorkers = 2
	c.MaxWorkers = 4
	c.QueueCap = 1000
	c.ScaleInterval = 100 * time.Millisecond
	c.ShutdownTimeout = 5 * time.Second
	c.ClientIDPrefix = "wk-test-" + strconv.FormatInt(clientSeq.Add(1), 10)
	return c
}

// Resolve validates and resolves c, failing the test on an error.
func Resolve(t testing.TB, c *config.Config) *config.Resolved {
	t.Helper()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	r, err := c.Resolve()
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// ClientID returns a client id no other test client of this process uses.
func ClientID(prefix string) string { return prefix + "-" + strconv.FormatInt(clientSeq.Add(1), 10) }

// Request returns request i in the envelope: run 7, client i, seq i,
// intended i × 1,000,003 ns, reply topic resp/t/{i mod 4}, and padding zero
// bytes.
func Request(t testing.TB, i, padding int) []byte {
	t.Helper()
	b, err := wire.AppendRequest(nil, &wire.Request{
		RunID: 7, ClientID: uint32(i), Seq: uint32(i), Intended: int64(i) * 1_000_003,
		Instance: []byte("t"), ReplyTopic: []byte("resp/t/" + strconv.Itoa(i%4)),
	}, padding)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Message returns request i (Request with i mod 3 bytes of padding) as it
// arrives on topic RequestTopic(i).
func Message(t testing.TB, i int) *mqttconn.Message {
	return &mqttconn.Message{Topic: RequestTopic(i), Payload: Request(t, i, i%3)}
}

// RequestTopic returns the topic request i is published on: req/{i mod 16}.
func RequestTopic(i int) string { return "req/" + strconv.Itoa(i%16) }

// Garbage returns what a worker must count malformed and never answer,
// built around a valid request: nothing, text, a response, the request cut
// short, an unknown version, and requests naming hostile reply topics (a
// wildcard, a NUL, invalid UTF-8).
func Garbage(t testing.TB, request []byte) [][]byte {
	t.Helper()
	garbage := [][]byte{
		{},
		[]byte("hello, worker"),
		wire.AppendResponse(nil, &wire.Response{RunID: 1}),
		request[:24],
		append([]byte{2}, request[1:]...), // unknown version
	}
	for _, topic := range []string{"resp/+/1", "resp/#", "resp/a\x00b", "resp/\xff"} { // hostile reply topics
		g, err := wire.AppendRequest(nil, &wire.Request{RunID: 7, ClientID: 9999, Seq: 9999, ReplyTopic: []byte(topic)}, 0)
		if err != nil {
			t.Fatal(err)
		}
		garbage = append(garbage, g)
	}
	return garbage
}

// Logger logs to t until the test ends; a line logged later (a connection's
// goroutine reporting a lost connection after the pool closed) is dropped.
func Logger(t testing.TB) *slog.Logger {
	w := &testWriter{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type testWriter struct {
	t    testing.TB
	mu   sync.Mutex
	done bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(string(p[:len(p)-1]))
	}
	return len(p), nil
}
