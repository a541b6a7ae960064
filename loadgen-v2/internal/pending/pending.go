// Package pending owns the table of outstanding requests: for every virtual
// client, MAX_INFLIGHT_PER_CLIENT slots, each empty or holding the sequence
// number of one outstanding request.
//
// The table is a flat []atomic.Uint32 of clients × inflight entries, allocated
// once: it is bounded by construction (4 bytes per slot) and a broker outage
// cannot grow it. A slot holds seq+1 (0 means empty).
//
// Concurrency: every operation is a compare-and-swap on one slot, so any
// goroutine may call any of them. Claim takes an empty slot (0 → seq+1) and
// never overwrites an outstanding request, even when two fires of one client
// are claimed at once; Match, Expire and Release end a request (seq+1 → 0), so
// each request ends exactly once — matched by its response or expired by the
// timeout sweep, whichever comes first. The loadgen's publishers also keep
// each client on one goroutine (ownership by connection), so claims of one
// client are ordered as well as safe.
package pending

import (
	"sync/atomic"
)

// maxSeq cannot be stored (seq+1 would wrap to the empty marker): Claim
// refuses it, which happens only after 2^32 intervals of one run.
const maxSeq = 1<<32 - 1

// Table is the pending-request table.
type Table struct {
	k     int
	slots []atomic.Uint32
}

// New returns a table of clients × inflight slots.
func New(clients, inflight int) *Table {
	return &Table{k: inflight, slots: make([]atomic.Uint32, clients*inflight)}
}

// BytesPerSlot is the memory of one slot, bytes.
const BytesPerSlot = 4

// BytesPerClient returns the table's memory per virtual client, in bytes.
func (t *Table) BytesPerClient() int { return BytesPerSlot * t.k }

// Claim records seq as outstanding for client. It returns false, recording
// nothing, when all of the client's slots are taken (the send is skipped).
// A slot is taken with a compare-and-swap from empty, so concurrent claims of
// one client never overwrite each other's requests.
func (t *Table) Claim(client uint32, seq uint32) bool {
	if seq == maxSeq {
		return false
	}
	base := int(client) * t.k
	for i := base; i < base+t.k; i++ {
		if t.slots[i].Load() == 0 && t.slots[i].CompareAndSwap(0, seq+1) {
			return true
		}
	}
	return false
}

// Match ends request (client, seq) if it is outstanding and reports whether it
// was. A second call for the same request returns false.
func (t *Table) Match(client uint32, seq uint32) bool {
	if seq == maxSeq {
		return false
	}
	base := int(client) * t.k
	for i := base; i < base+t.k; i++ {
		if t.slots[i].CompareAndSwap(seq+1, 0) {
			return true
		}
	}
	return false
}

// Release is Match for a request whose publish failed.
func (t *Table) Release(client uint32, seq uint32) bool { return t.Match(client, seq) }

// Expire ends every outstanding request of client whose sequence number is at
// most seq (their deadlines have passed) and returns how many it ended; each
// ended request is passed to fn (which may be nil).
func (t *Table) Expire(client uint32, seq uint32, fn func(seq uint32)) int {
	base := int(client) * t.k
	n := 0
	for i := base; i < base+t.k; i++ {
		v := t.slots[i].Load()
		if v == 0 || v-1 > seq {
			continue
		}
		if t.slots[i].CompareAndSwap(v, 0) {
			n++
			if fn != nil {
				fn(v - 1)
			}
		}
	}
	return n
}

// Outstanding calls fn for every outstanding request (a full scan, for the
// final report) and returns how many there are.
func (t *Table) Outstanding(fn func(client, seq uint32)) int {
	n := 0
	for i := range t.slots {
		if v := t.slots[i].Load(); v != 0 {
			n++
			if fn != nil {
				fn(uint32(i/t.k), v-1)
			}
		}
	}
	return n
}
