package engine

import (
	"context"
	"log/slog"
	"time"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/mqttconn"
)

// shutdown drains the queue within SHUTDOWN_TIMEOUT and closes the pool.
func (e *Engine) shutdown(pool *mqttconn.Pool) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), e.cfg.ShutdownTimeout)
	defer cancel()
	e.log.Info("draining", "queue_depth", len(e.queue), "in_flight", e.inFlight(),
		"shutdown_timeout_seconds", e.cfg.ShutdownTimeout.Seconds())
	if err := pool.Unsubscribe(ctx); err != nil {
		e.log.Warn("unsubscribe before drain failed; requests may still arrive", "err", err)
	}
	e.settle(ctx)
	close(e.drain)
	done := make(chan struct{})
	go func() {
		e.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		e.log.Warn("shutdown timeout reached: abandoning the rest of the queue",
			"queue_depth", len(e.queue), "in_flight", e.inFlight())
		e.stopHard()
		<-done
	}
	// Release dispatch goroutines blocked on a full queue (DROP_ON_FULL=false),
	// so the pool can close.
	e.stopHard()
	pool.Close()
	left := uint64(0)
	for empty := false; !empty; {
		select {
		case it := <-e.queue:
			e.release(it)
			payloads.put(it.buf)
			left++
		default:
			empty = true
		}
	}
	e.leftover.Add(left)
	s := e.Stats()
	lvl := slog.LevelInfo
	if s.Abandoned > 0 {
		lvl = slog.LevelWarn
	}
	e.log.Log(context.Background(), lvl, "drained",
		"drain_seconds", time.Since(start).Seconds(), "abandoned", s.Abandoned,
		"received", s.Received, "processed", s.Processed, "dropped_full", s.DroppedFull,
		"malformed", s.Malformed, "reply_failed", s.ReplyFailed)
}

// settle waits, after unsubscribing, until no message arrived for a few
// polls (messages the broker sent before the UNSUBACK may still be in paho's
// channels), at most settleMax.
func (e *Engine) settle(ctx context.Context) {
	t := time.NewTicker(settlePoll)
	defer t.Stop()
	limit := time.NewTimer(settleMax)
	defer limit.Stop()
	last, quiet := e.received(), 0
	for quiet < settleQuiet {
		select {
		case <-ctx.Done():
			return
		case <-limit.C:
			return
		case <-t.C:
		}
		if r := e.received(); r == last {
			quiet++
		} else {
			last, quiet = r, 0
		}
	}
}

func (e *Engine) stopHard() { e.hardO.Do(func() { close(e.hard) }) }
