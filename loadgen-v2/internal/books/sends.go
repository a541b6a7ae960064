package books

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// Sends remembers when the run loop took each run of fires, so that the
// response path can take a request's own schedule lag out of its round trip
// (the rest is the broker and the network) without any memory per virtual
// client. The loop takes fires in order, in runs [previous end, end), all at
// one time; Record appends (end, time) to a ring, SentAt finds the run of a
// fire by binary search over the ring (ends increase).
//
// Size: one entry per loop wake (at most one per grid cell), kept for twice
// REQUEST_TIMEOUT, since a response can only match within it: at a 1 ms grid
// and 5 s, 16,384 entries (256 KiB). An entry is two atomics: one writer (the
// loop), any number of readers (connection goroutines), no lock; a reader
// that races the writer over an entry sees it changed and reports "unknown".
type Sends struct {
	ring []sendRun
	mask uint64
	n    atomic.Uint64 // entries written
}

type sendRun struct {
	end atomic.Uint64 // fires before end (and from the previous entry's end) ...
	at  atomic.Int64  // ... were taken at this time, ns after the epoch
}

// newSends sizes the ring for a loop waking at most once per grid that must
// answer for REQUEST_TIMEOUT timeout: the next power of two ≥ 2·timeout/grid
// + 1024, between 1,024 and 2^20 entries.
func newSends(timeout, grid time.Duration) *Sends {
	want := uint64(1024)
	if grid > 0 {
		want += 2 * uint64(timeout/grid)
	}
	size := uint64(1) << min(20, bits.Len64(want-1))
	return &Sends{ring: make([]sendRun, size), mask: size - 1}
}

// Record notes that the fires before end not recorded yet were taken at at
// (ns after the epoch). Only the loop calls it, with increasing ends.
func (s *Sends) Record(end uint64, at int64) {
	i := s.n.Load()
	e := &s.ring[i&s.mask]
	e.end.Store(0) // a reader in the middle of this entry sees it change
	e.at.Store(at)
	e.end.Store(end)
	s.n.Store(i + 1)
}

// SentAt returns when fire f was taken, ns after the epoch; ok is false if
// it has not been taken or its entry was overwritten (older than the ring).
func (s *Sends) SentAt(f uint64) (at int64, ok bool) {
	n := s.n.Load()
	size := uint64(len(s.ring))
	lo := uint64(0)
	if n > size {
		lo = n - size + 1 // the oldest entry may be being overwritten
	}
	// The first entry in [lo, n) whose end is > f.
	i, j := lo, n
	for i < j {
		h := i + (j-i)/2
		if s.ring[h&s.mask].end.Load() > f {
			j = h
		} else {
			i = h + 1
		}
	}
	if i == n {
		return 0, false
	}
	switch {
	case i == lo && lo > 0:
		// f may belong to the entry before lo, which is overwritten.
		return 0, false
	case i > lo && s.ring[(i-1)&s.mask].end.Load() > f:
		return 0, false // the ring moved under the search
	}
	e := &s.ring[i&s.mask]
	end := e.end.Load()
	at = e.at.Load()
	if end <= f || e.end.Load() != end {
		return 0, false // overwritten while read
	}
	return at, true
}
