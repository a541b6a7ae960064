// Package schedule owns the open-loop arrival schedule of the virtual clients.
//
// There is no timer or goroutine per virtual client: a schedule is pure
// arithmetic over two flat tables, and the run loop asks it which fires fell
// due since its last tick (a timing wheel with one slot per fire).
//
// Every virtual client sends once per interval I. Clients are laid out on
// positions p = 0..N-1 and position p fires at the phase
//
//	phase(p) = floor(p * I / N)
//
// so the N clients are spread evenly over the interval. Fire number f (counted
// over all clients, in time order) is fire k = f / N of position p = f % N, at
//
//	time(f) = k*I + phase(p)      (relative to the run's epoch)
//
// Times are computed from the epoch, never from the previous send, so the
// schedule never drifts and a stall never delays later fires (open loop). The
// number of fires with time ≤ t is
//
//	F(t) = k*N + min(N, ceil((r+1) * N / I)),   k = floor(t / I), r = t - k*I
//
// because position p has fired in the current cycle iff floor(p*I/N) ≤ r,
// i.e. p*I/N < r+1. Products use 128-bit arithmetic, so there is no overflow
// for any N < 2^32 and interval up to years.
//
// Positions are grouped by connection: consecutive positions belong to the
// same connection in runs of Run clients, cycling through the connections.
// A tick's due fires are consecutive positions, so they land on few
// connections and are written with few syscalls, while over an interval every
// connection carries its share.
//
// The sequence number of a request is its client's fire index k (uint32), so
// the intended time of (client, seq) is known without storing it.
//
// The grid. A run loop cannot keep an arbitrary time: it wakes, sends what
// fell due, and sleeps again. If intended times were spread to the
// nanosecond, every request would leave up to one wake-up period late, and
// since latency is (rightly) measured from the intended time that lag would
// be booked as the system's latency (with a 1 ms loop: 0–1 ms on every
// request, the broker's own round trip being ~0.13 ms). OnGrid lays the
// intended times on a grid of G nanoseconds instead, the resolution the loop
// can actually keep:
//
//	phase_G(p) = phase(p) − phase(p) mod G
//
// Each position still fires once per interval, at a fixed time (open loop);
// the phases within a grid cell coincide, so a cell's fires are due together
// and the loop wakes once per cell that holds a fire, exactly at its time.
// Fire f of cycle k is then at k·I + phase_G(p), still non-decreasing in f,
// and F(t) counts the positions with phase_G(p) ≤ r, i.e. phase(p) <
// r − r mod G + G: it is the exact formula above at
//
//	r' = min(I − 1, r − r mod G + G − 1).
//
// G = 1 is the exact schedule. The cost is burstiness below G: at rate R a
// cell holds about R·G requests sent back to back (R = 20,000 req/s, G = 1 ms:
// 20), which the arrival process of any real fleet of clients has too.
package schedule

import (
	"fmt"
	"math/bits"
	"time"
)

// Schedule is the arrival schedule of N virtual clients. It is read-only
// after New and safe for concurrent use.
type Schedule struct {
	n        uint64
	interval uint64   // nanoseconds
	grid     uint64   // nanoseconds, ≥ 1 (OnGrid)
	perm     []uint32 // position -> client
	pos      []uint32 // client -> position
}

// New builds the schedule of n clients firing every interval. connOf maps a
// client (0..n-1) to its connection (0..conns-1); run is how many consecutive
// positions go to one connection before the next connection's turn (≥ 1).
// Building 1M clients takes a few milliseconds.
func New(n int, interval time.Duration, conns int, connOf func(client int) int, run int) (*Schedule, error) {
	if n <= 0 || uint64(n) > 1<<32-1 {
		return nil, fmt.Errorf("schedule: %d clients not in 1..%d", n, uint64(1<<32-1))
	}
	if interval <= 0 {
		return nil, fmt.Errorf("schedule: interval %v must be positive", interval)
	}
	if conns <= 0 {
		return nil, fmt.Errorf("schedule: %d connections must be positive", conns)
	}
	if run < 1 {
		run = 1
	}
	s := &Schedule{n: uint64(n), interval: uint64(interval), grid: 1, perm: make([]uint32, n), pos: make([]uint32, n)}

	// Counting sort of clients by connection (stable: ascending client id).
	start := make([]int, conns+1)
	for c := range n {
		start[connOf(c)+1]++
	}
	for j := 1; j <= conns; j++ {
		start[j] += start[j-1]
	}
	byConn := s.pos // reuse as scratch, overwritten below
	next := append([]int(nil), start[:conns]...)
	for c := range n {
		j := connOf(c)
		byConn[next[j]] = uint32(c)
		next[j]++
	}
	// Interleave runs of `run` clients of each connection in turn.
	p := 0
	taken := make([]int, conns)
	for p < n {
		for j := range conns {
			size := start[j+1] - start[j]
			lo := taken[j]
			hi := min(lo+run, size)
			for q := lo; q < hi; q++ {
				s.perm[p] = byConn[start[j]+q]
				p++
			}
			taken[j] = hi
		}
	}
	for q, c := range s.perm {
		s.pos[c] = uint32(q)
	}
	return s, nil
}

// N returns the number of clients.
func (s *Schedule) N() int { return int(s.n) }

// Interval returns the send interval of every client.
func (s *Schedule) Interval() time.Duration { return time.Duration(s.interval) }

// OnGrid returns the schedule with its intended times laid on a grid of g
// (see the package doc): the same clients and positions (shared, read-only),
// phases rounded down to a multiple of g. g ≤ 1 ns is the exact schedule.
func (s *Schedule) OnGrid(g time.Duration) *Schedule {
	c := *s
	c.grid = uint64(max(g, 1))
	return &c
}

// Grid returns the grid of the intended times (1 ns: exact).
func (s *Schedule) Grid() time.Duration { return time.Duration(s.grid) }

// phase returns phase_G(p) = floor(p*I/N) rounded down to the grid, in
// nanoseconds.
func (s *Schedule) phase(p uint64) uint64 {
	hi, lo := bits.Mul64(p, s.interval)
	q, _ := bits.Div64(hi, lo, s.n) // hi < n since p < n
	if s.grid > 1 {
		q -= q % s.grid
	}
	return q
}

// FiresUpTo returns F(t): how many fires have a time ≤ t nanoseconds after the
// epoch. F is non-decreasing; F(t) for t < 0 is 0.
func (s *Schedule) FiresUpTo(t int64) uint64 {
	if t < 0 {
		return 0
	}
	ut := uint64(t)
	k := ut / s.interval
	r := ut - k*s.interval
	if s.grid > 1 {
		r = min(s.interval-1, r-r%s.grid+s.grid-1) // r' (package doc)
	}
	// ceil((r+1)*N / I)
	hi, lo := bits.Mul64(r+1, s.n)
	q, rem := bits.Div64(hi, lo, s.interval) // hi < I since r+1 ≤ I
	if rem != 0 {
		q++
	}
	return k*s.n + min(q, s.n)
}

// Fire returns the client, sequence number and time (nanoseconds after the
// epoch) of fire f.
func (s *Schedule) Fire(f uint64) (client uint32, seq uint32, at int64) {
	k := f / s.n
	p := f - k*s.n
	return s.perm[p], uint32(k), int64(k*s.interval + s.phase(p))
}

// FireTime returns the time of fire f, nanoseconds after the epoch.
func (s *Schedule) FireTime(f uint64) int64 {
	k := f / s.n
	p := f - k*s.n
	return int64(k*s.interval + s.phase(p))
}

// TimeOf returns the intended time of request seq of client, nanoseconds after
// the epoch.
func (s *Schedule) TimeOf(client uint32, seq uint32) int64 {
	return int64(uint64(seq)*s.interval + s.phase(uint64(s.pos[client])))
}

// FireIndex returns the fire index of request seq of client: seq·N + its
// position (the inverse of Fire).
func (s *Schedule) FireIndex(client uint32, seq uint32) uint64 {
	return uint64(seq)*s.n + uint64(s.pos[client])
}

// Online reports whether fire f is at or after its position's ramp-up start:
// with a linear ramp over ramp nanoseconds, position p comes online at
// ramp·p/N, so fire f (at time t, position p) is sent iff t·N ≥ ramp·p. Both
// products are compared in 128 bits (t, ramp < 2^63 and p, N < 2^32 would
// overflow 64). ramp ≤ 0 means no ramp.
func (s *Schedule) Online(f uint64, ramp int64) bool {
	if ramp <= 0 {
		return true
	}
	k := f / s.n
	p := f - k*s.n
	t := k*s.interval + s.phase(p)
	if t >= uint64(ramp) {
		return true
	}
	th, tl := bits.Mul64(t, s.n)
	rh, rl := bits.Mul64(uint64(ramp), p)
	return th > rh || (th == rh && tl >= rl)
}

// Position returns the position of client (its rank in the phase order).
func (s *Schedule) Position(client uint32) int { return int(s.pos[client]) }

// BytesPerClient is the schedule's memory per virtual client, in bytes.
const BytesPerClient = 8

// PerTick returns about how many of n clients firing every interval fall due
// in one tick of the run loop: n·tick/interval rounded up, at least 1. The
// run loop publishes a tick's fires together, so New lays positions out in
// runs of about this many per connection.
func PerTick(n int, interval, tick time.Duration) int {
	perTick := float64(n) * float64(tick) / float64(interval)
	return max(int(perTick+0.999), 1)
}
