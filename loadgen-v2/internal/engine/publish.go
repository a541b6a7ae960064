package engine

import (
	"sync"
	"time"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/wire"
)

// publishers encode and publish the fires of a tick. A tick with at most
// BATCH_SIZE fires is published inline by the scheduler; a larger one is cut
// into BATCH_SIZE chunks spread over PUBLISH_WORKERS goroutines.
type publishers struct {
	e      *Engine
	inline *publisher
	work   chan chunk
	wg     sync.WaitGroup // workers
	done   sync.WaitGroup // chunks of the current tick
}

type chunk struct {
	a, b uint64
	now  int64
}

// publisher is the state of one publishing goroutine: an encode buffer and
// the set of connections written to in the current chunk.
type publisher struct {
	e       *Engine
	id      int
	buf     []byte
	touched []int
	mark    []uint64
	gen     uint64
}

func newPublisher(e *Engine, id int) *publisher {
	return &publisher{e: e, id: id, buf: make([]byte, 0, 256), mark: make([]uint64, e.cfg.Connections)}
}

func newPublishers(e *Engine) *publishers {
	p := &publishers{e: e, inline: newPublisher(e, 0)}
	if e.cfg.PublishWorkers > 1 {
		p.work = make(chan chunk)
		for i := 1; i < e.cfg.PublishWorkers; i++ {
			w := newPublisher(e, i)
			p.wg.Go(func() {
				for c := range p.work {
					w.publish(c.a, c.b, c.now)
					p.done.Done()
				}
			})
		}
	}
	return p
}

// send publishes fires [a, b) and returns when all are handed to connections.
func (p *publishers) send(a, b uint64, now int64) {
	size := uint64(p.e.cfg.BatchSize)
	if b-a <= size || p.work == nil {
		p.inline.publish(a, b, now)
		return
	}
	var last chunk
	for lo := a; lo < b; lo += size {
		hi := min(lo+size, b)
		if hi == b {
			last = chunk{lo, hi, now}
			break
		}
		p.done.Add(1)
		p.work <- chunk{lo, hi, now}
	}
	p.inline.publish(last.a, last.b, last.now)
	p.done.Wait()
}

func (p *publishers) close() {
	if p.work != nil {
		close(p.work)
		p.wg.Wait()
	}
}

// publish sends fires [a, b): claim a pending slot (or count a skip), encode,
// queue on the client's connection; then flush the connections it touched.
func (w *publisher) publish(a, b uint64, now int64) {
	e := w.e
	w.gen++
	w.touched = w.touched[:0]
	var sent, skipped, failed [2]uint64
	n := uint64(e.n)
	for f := a; f < b; f++ {
		client, seq, at := e.sched.Fire(f)
		if e.rampNs > 0 && at < e.rampNs {
			// Position p comes online at RAMP_UP * p / N.
			p := f % n
			if uint64(at)*n < uint64(e.rampNs)*p {
				continue
			}
		}
		ph := e.phaseOf(at)
		if !e.table.Claim(client, seq) {
			skipped[ph]++
			continue
		}
		shard := e.shardOf(client)
		conn := shard % e.cfg.Connections
		req := wire.Request{RunID: e.runID, ClientID: e.offset + client, Seq: seq, Intended: at, Instance: e.instance, ReplyTopic: e.respTopics[shard]}
		pad := max(e.cfg.PayloadBytes-wire.RequestSize(len(e.instance), len(req.ReplyTopic), 0), 0)
		var err error
		w.buf, err = wire.AppendRequest(w.buf[:0], &req, pad)
		if err == nil {
			err = e.pool.Conn(conn).Queue(e.reqTopics[shard], w.buf)
		}
		if err != nil {
			e.table.Release(client, seq)
			failed[ph]++
			continue
		}
		if w.mark[conn] != w.gen {
			w.mark[conn] = w.gen
			w.touched = append(w.touched, conn)
		}
		sent[ph]++
		e.lag.Record(w.id, time.Duration(now-at))
	}
	for _, c := range w.touched {
		e.pool.Conn(c).Flush()
	}
	for ph := range 2 {
		c := &e.counts[ph]
		if sent[ph] > 0 {
			c.sent.Add(sent[ph])
		}
		if skipped[ph] > 0 {
			c.skipped.Add(skipped[ph])
		}
		if failed[ph] > 0 {
			c.sendFailed.Add(failed[ph])
		}
	}
}
