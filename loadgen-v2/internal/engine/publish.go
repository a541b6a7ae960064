package engine

import (
	"sync"
	"time"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/mqttconn"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/wire"
)

// publishers encode and publish the fires of a tick, by ownership: publisher
// w owns the connections c with c mod W == w (W = min(PUBLISH_WORKERS,
// CONNECTIONS)), hence every virtual client of those connections. A tick with
// at most BATCH_SIZE fires is published inline by the scheduler; a larger one
// (a high rate, or the catch-up after a stall) is cut into segments of
// consecutive fires of one owner, and each owner publishes its own segments
// while the scheduler waits. Ticks never overlap, so all fires of one client
// are claimed by one goroutine, in order: the claims of a client are never
// concurrent, by construction.
//
// No publisher blocks on a socket: Queue appends to the connection's buffer
// and Flush makes one non-blocking write attempt, leaving what would block to
// the connection's flusher.
type publishers struct {
	e      *Engine
	owners []*publisher // owners[0] runs on the scheduler goroutine
	work   []chan struct{}
	wg     sync.WaitGroup // owner goroutines
	done   sync.WaitGroup // owners busy with the current tick
}

// segment is a run of consecutive fires [a, b) of one owner.
type segment struct{ a, b uint64 }

// publisher is the state of one owner: an encode buffer, its segments of the
// current tick and the set of connections it wrote to.
type publisher struct {
	e       *Engine
	id      int
	segs    []segment
	buf     []byte // payload being encoded
	cbuf    []byte // Correlation Data being encoded
	msg     mqttconn.Message
	fields  wire.Fields
	touched []int
	mark    []uint64
	gen     uint64
	tally   [2]tally
	bytes   uint64 // request payload bytes of the current call
}

// tally counts one publish call's outcomes of one phase, added to the shared
// counters once per call.
type tally struct{ scheduled, sent, skipped, failed, first uint64 }

func newPublisher(e *Engine, id int) *publisher {
	return &publisher{e: e, id: id, buf: make([]byte, 0, 256), cbuf: make([]byte, 0, wire.CorrelationSize),
		mark: make([]uint64, e.cfg.Connections), fields: wire.Fields{Instance: e.cfg.InstanceID}}
}

func newPublishers(e *Engine) *publishers {
	w := max(min(e.cfg.PublishWorkers, e.cfg.Connections), 1)
	p := &publishers{e: e}
	for i := range w {
		p.owners = append(p.owners, newPublisher(e, i))
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
	client, _, _ := p.e.sched.Fire(f)
	return p.e.connOf(client) % len(p.owners)
}

// send publishes fires [a, b) (sent at time now) and returns when every one
// is handed to its connection or counted.
func (p *publishers) send(a, b uint64, now int64) {
	if b-a <= uint64(p.e.cfg.BatchSize) || len(p.owners) == 1 {
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
// connections it wrote to and adds its tallies to the shared counters.
func (w *publisher) publishSegments() {
	e := w.e
	w.gen++
	w.touched = w.touched[:0]
	w.tally = [2]tally{}
	w.bytes = 0
	now := e.now()
	for _, s := range w.segs {
		for f := s.a; f < s.b; f++ {
			w.publish(f, now)
		}
	}
	for _, c := range w.touched {
		e.pool.Conn(c).Flush()
	}
	for ph := range 2 {
		t, c := &w.tally[ph], &e.counts[ph]
		add := func(dst interface{ Add(uint64) uint64 }, v uint64) {
			if v > 0 {
				dst.Add(v)
			}
		}
		add(&c.scheduled, t.scheduled)
		add(&c.sent, t.sent)
		add(&c.skipped, t.skipped)
		add(&c.sendFailed, t.failed)
		add(&c.firstFires, t.first)
	}
	if w.bytes > 0 {
		e.bytesOut.Add(w.bytes)
	}
}

// publish handles fire f: skip it if its client is not online yet (ramp-up);
// else it is scheduled, and ends sent (slot claimed, frame queued), skipped
// (no free slot) or failed (the connection refused the frame).
func (w *publisher) publish(f uint64, now int64) {
	e := w.e
	if !e.sched.Online(f, e.rampNs) {
		return
	}
	client, seq, at := e.sched.Fire(f)
	t := &w.tally[e.phaseOf(at)]
	t.scheduled++
	if seq == 0 || !e.sched.Online(f-uint64(e.n), e.rampNs) {
		t.first++ // the client's first scheduled fire
	}
	if !e.table.Claim(client, seq) {
		t.skipped++
		return
	}
	shard := e.shardOf(client)
	conn := shard % e.cfg.Connections
	err := w.encode(client, seq, at, shard)
	if err == nil {
		err = e.pool.Conn(conn).QueueMessage(&w.msg)
	}
	if err != nil {
		e.table.Release(client, seq)
		t.failed++
		return
	}
	w.bytes += uint64(len(w.msg.Payload))
	if w.mark[conn] != w.gen {
		w.mark[conn] = w.gen
		w.touched = append(w.touched, conn)
	}
	t.sent++
	e.lag.Record(w.id, time.Duration(now-at))
}

// encode builds the request of fire (client, seq) intended at at into w.msg,
// by the correlation mode: worker-v2's envelope, or a free payload (template
// or filler) with MQTT 5 Response Topic + Correlation Data, or a JSON
// template carrying the {{id}}.
func (w *publisher) encode(client, seq uint32, at int64, shard int) error {
	e := w.e
	k := wire.Key{RunID: e.runID, ClientID: e.offset + client, Seq: seq}
	w.msg = mqttconn.Message{Topic: e.reqTopics[shard]}
	if e.proto.Version == 5 {
		w.msg.ResponseTopic, w.msg.ExpirySeconds = e.respStr[shard], e.expiry
	}
	switch e.proto.Correlation {
	case wire.Envelope:
		req := wire.Request{RunID: k.RunID, ClientID: k.ClientID, Seq: seq, Intended: at, Instance: e.instance, ReplyTopic: e.respTopics[shard]}
		pad := max(e.cfg.PayloadBytes-wire.RequestSize(len(e.instance), len(req.ReplyTopic), 0), 0)
		var err error
		if w.buf, err = wire.AppendRequest(w.buf[:0], &req, pad); err != nil {
			return err
		}
		w.msg.Payload = w.buf
		return nil
	case wire.Properties:
		w.cbuf = wire.AppendCorrelation(w.cbuf[:0], k)
		w.msg.CorrelationData = w.cbuf
	}
	if tp := e.proto.Template; tp != nil {
		w.fields.Key, w.fields.UnixMS, w.fields.Shard, w.fields.Reply = k, e.epochMS+at/int64(time.Millisecond), shard, e.respStr[shard]
		w.buf = tp.AppendTo(w.buf[:0], &w.fields)
		w.msg.Payload = w.buf
	} else {
		w.msg.Payload = e.filler
	}
	return nil
}
