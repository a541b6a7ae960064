// Package modes owns the processing modes (MODE): what a worker does with one
// request before replying: nothing (health), wait (sleep), or burn CPU (cpu).
// A Processor belongs to one worker goroutine and allocates nothing per message.
package modes

import (
	"fmt"
	"math/rand/v2"
	"time"
)

// Modes.
const (
	Health = "health"
	Sleep  = "sleep"
	CPU    = "cpu"
)

// Options selects and tunes the processing.
type Options struct {
	Mode       string        // Health, Sleep or CPU
	Sleep      time.Duration // Sleep: mean processing time
	Jitter     time.Duration // Sleep: uniform jitter ± this much; the result is never negative
	Iterations int           // CPU: hash rounds per request
}

// Processor processes requests for one worker goroutine; it is not safe for
// concurrent use.
type Processor interface {
	// Process handles one request payload. It returns false when abort was
	// closed before the work was done (only sleeping can be cut short).
	Process(payload []byte, abort <-chan struct{}) bool
}

// New returns a Processor for o. seed makes the sleep jitter of each worker
// independent.
func New(o Options, seed uint64) (Processor, error) {
	switch o.Mode {
	case Health:
		return health{}, nil
	case Sleep:
		t := time.NewTimer(time.Hour)
		t.Stop()
		return &sleeper{mean: o.Sleep, jitter: o.Jitter, t: t, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}, nil
	case CPU:
		return &burner{iterations: o.Iterations}, nil
	}
	return nil, fmt.Errorf("unknown processing mode %q (health, sleep, cpu)", o.Mode)
}

type health struct{}

func (health) Process([]byte, <-chan struct{}) bool { return true }

// sleeper waits on one reusable timer: no allocation per message. (Since Go
// 1.23 a stopped or fired timer can be Reset without draining its channel.)
type sleeper struct {
	mean, jitter time.Duration
	t            *time.Timer
	rng          *rand.Rand
}

// Duration returns the next processing time: mean + U[-jitter, +jitter],
// clamped at 0.
func (s *sleeper) Duration() time.Duration {
	d := s.mean
	if s.jitter > 0 {
		d += time.Duration(s.rng.Int64N(2*int64(s.jitter)+1)) - s.jitter
	}
	return max(d, 0)
}

func (s *sleeper) Process(_ []byte, abort <-chan struct{}) bool {
	d := s.Duration()
	if d == 0 {
		return true
	}
	s.t.Reset(d)
	select {
	case <-s.t.C:
		return true
	case <-abort:
		s.t.Stop()
		return false
	}
}

// burner hashes the payload Iterations times. The result goes to sink, a
// field of a heap object, so the compiler cannot remove the loop.
type burner struct {
	iterations int
	sink       uint64
}

func (b *burner) Process(payload []byte, _ <-chan struct{}) bool {
	b.sink ^= Work(payload, b.iterations)
	return true
}

// Work runs n rounds of FNV-1a over payload (cycling through it), each
// followed by a xorshift step, and returns the hash. It is deterministic and
// its cost is linear in n (about 2-3 ns a round on this machine).
func Work(payload []byte, n int) uint64 {
	const (
		offset = 14695981039346656037
		prime  = 1099511628211
	)
	h := uint64(offset)
	j := 0
	for range n {
		var c byte
		if j < len(payload) {
			c = payload[j]
			j++
		} else {
			j = 0
		}
		h ^= uint64(c)
		h *= prime
		h ^= h << 13
		h ^= h >> 7
		h ^= h << 17
	}
	return h
}
