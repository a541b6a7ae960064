package dispatch

import (
	"sync"
	"time"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/wire"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/loadgen-v2/internal/books"
)

// publishers encode and publish the fires of a tick, by ownership: publisher
// w owns the connections c with c mod W == w (W = min(PUBLISH_WORKERS,
// CONNECTIONS)), hence every virtual client of those connections. A tick with
// at most BATCH_SIZE fires is published inline by the loop; a larger one (a
// high rate, or the catch-up after a stall) is cut into segments of
// consecutive fires of one owner, and each owner publishes its own segments
// while the loop waits. Ticks never overlap, so all fires of one client are
// claimed by one goroutine, in order: the claims of a client are never
// concurrent, by construction.
//
// No publisher blocks on a socket: QueueMessage appends to the connection's
// buffer and Flush makes one non-blocking write attempt, leaving what would
// block to the connection's flusher.
type publishers struct {
	d      *Dispatcher
	batch  uint64
	owners []*publisher // owners[0] runs on the loop's goroutine
	work   []chan struct{}
	wg     sync.WaitGroup // owner goroutines
	done   sync.WaitGroup // owners busy with the current tick
}

// segment is a run of consecutive fires [a, b) of one owner.
type segment struct{ a, b uint64 }

// publisher is the state of one owner: its encoder, its segments of the
// current tick and the set of connections it wrote to.
type publisher struct {
	d       *Dispatcher
	id      int
	segs    []segment
	enc     *wire.Encoder
	touched []int
	mark    []uint64
	gen     uint64
	tally   [2]books.Tally
	bytes   uint64 // request payload bytes of the current call
	now     int64  // when the loop took the current fires (ns after the epoch)

	// Copied from the run's configuration, read per fire.
	ramp             int64
	n, offset, runID uint32
	conns            int
	epochMS          int64 // the epoch as Unix milliseconds ({{ts}})
	reqTopics        []string
	respTopics       []string
}

func newPublisher(d *Dispatcher, id int) *publisher {
	res := d.p.Res
	return &publisher{
		d: d, id: id, enc: res.Requester.NewEncoder(), mark: make([]uint64, res.Connections),
		ramp: int64(res.RampUp), n: uint32(res.VirtualClients), offset: res.Offset, runID: res.RunID, conns: res.Connections,
		epochMS: d.p.Books.Epoch().UnixMilli(), reqTopics: res.RequestTopics, respTopics: res.ResponseTopics,
	}
}

func newPublishers(d *Dispatcher) *publishers {
	res := d.p.Res
	w := max(min(res.PublishWorkers, res.Connections), 1)
	p := &publishers{d: d, batch: uint64(res.BatchSize)}
	for i := range w {
		p.owners = append(p.owners, newPublisher(d, i))
	}
	for i := 1; i < w; i++ {
		ch := make(chan struct{}, 1)
		p.work = append(p.work, ch)
		o := p.owners[i]
		p.wg.Go(func() {
			for range ch {
				o.publishSegments()
				p.done.Done()
			}
		})
	}
	return p
}

// ownerOf returns the owner of fire f.
func (p *publishers) ownerOf(f uint64) int {
	client, _, _ := p.d.p.Schedule.Fire(f)
	return p.d.p.Res.ConnOf(client) % len(p.owners)
}

// send publishes fires [a, b) (sent at time now) and returns when every one
// is handed to its connection or counted.
func (p *publishers) send(a, b uint64, now int64) {
	for _, o := range p.owners {
		o.now = now
	}
	if b-a <= p.batch || len(p.owners) == 1 {
		o := p.owners[0]
		o.segs = append(o.segs[:0], segment{a, b})
		o.publishSegments()
		return
	}
	for _, o := range p.owners {
		o.segs = o.segs[:0]
	}
	// Positions are laid out in runs of one connection, so segments are long.
	lo, cur := a, p.ownerOf(a)
	for f := a + 1; f < b; f++ {
		if w := p.ownerOf(f); w != cur {
			p.owners[cur].segs = append(p.owners[cur].segs, segment{lo, f})
			lo, cur = f, w
		}
	}
	p.owners[cur].segs = append(p.owners[cur].segs, segment{lo, b})
	for i, o := range p.owners[1:] {
		if len(o.segs) > 0 {
			p.done.Add(1)
			p.work[i] <- struct{}{}
		}
	}
	p.owners[0].publishSegments()
	p.done.Wait()
}

func (p *publishers) close() {
	for _, ch := range p.work {
		close(ch)
	}
	p.wg.Wait()
}

// publishSegments publishes the fires of w.segs, then flushes the
// connections it wrote to and adds its tallies to the books.
func (w *publisher) publishSegments() {
	b := w.d.p.Books
	w.gen++
	w.touched = w.touched[:0]
	w.tally = [2]books.Tally{}
	w.bytes = 0
	now := w.now // the time books.Sends records for these fires
	for _, s := range w.segs {
		for f := s.a; f < s.b; f++ {
			w.publish(f, now)
		}
	}
	for _, c := range w.touched {
		w.d.p.Transport.Conn(c).Flush()
	}
	for ph := range w.tally {
		b.Add(ph, &w.tally[ph])
	}
	if w.bytes > 0 {
		b.AddRequestBytes(w.bytes)
	}
}

// publish handles fire f: skip it if its client is not online yet (ramp-up);
// else it is scheduled, and ends sent (slot claimed, frame queued), skipped
// (no free slot) or failed (the connection refused the frame).
func (w *publisher) publish(f uint64, now int64) {
	d := w.d
	sched, b := d.p.Schedule, d.p.Books
	if !sched.Online(f, w.ramp) {
		return
	}
	client, seq, at := sched.Fire(f)
	phase := b.PhaseOf(at)
	t := &w.tally[phase]
	t.Scheduled++
	if seq == 0 || !sched.Online(f-uint64(w.n), w.ramp) {
		t.First++ // the client's first scheduled fire
	}
	if !d.p.Table.Claim(client, seq) {
		t.Skipped++
		return
	}
	shard := d.p.Res.ShardOf(client)
	conn := shard % w.conns
	k := wire.Key{RunID: w.runID, ClientID: w.offset + client, Seq: seq}
	msg, err := w.enc.Encode(w.reqTopics[shard], w.respTopics[shard], shard, k, at, w.epochMS+at/int64(time.Millisecond))
	if err == nil {
		err = d.p.Transport.Conn(conn).QueueMessage(msg)
	}
	if err != nil {
		d.p.Table.Release(client, seq)
		t.Failed++
		return
	}
	w.bytes += uint64(len(msg.Payload))
	if w.mark[conn] != w.gen {
		w.mark[conn] = w.gen
		w.touched = append(w.touched, conn)
	}
	t.Sent++
	if phase == books.Measured { // the warm-up is left out of every histogram, as of the counts
		b.Hist.ScheduleLag.Record(w.id, time.Duration(now-at))
	}
}
