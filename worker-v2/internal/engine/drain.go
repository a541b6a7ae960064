package engine

import (
	"context"
	"log/slog"
	"time"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/mqttconn"
)

// Timing of the wait for stragglers after unsubscribing.
const (
	settlePoll  = 20 * time.Millisecond
	settleQuiet = 3 // polls without a new message
	settleMax   = time.Second
)

// shutdown drains the queue within SHUTDOWN_TIMEOUT and closes t.
func (e *Engine) shutdown(t mqttconn.Transport) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), e.cfg.ShutdownTimeout)
	defer cancel()
	e.log.Info("draining", "queue_depth", e.queue.Len(), "in_flight", e.pool.InFlight(),
		"shutdown_timeout_seconds", e.cfg.ShutdownTimeout.Seconds())
	if err := t.Unsubscribe(ctx); err != nil {
		e.log.Warn("unsubscribe before drain failed; requests may still arrive", "err", err)
	}
	e.settle(ctx)
	done := e.pool.Stop()
	select {
	case <-done:
	case <-ctx.Done():
		e.log.Warn("shutdown timeout reached: abandoning the rest of the queue",
			"queue_depth", e.queue.Len(), "in_flight", e.pool.InFlight())
		e.pool.Abort()
		e.queue.Close()
		<-done
	}
	// Release connections blocked on a full queue (DROP_ON_FULL=false), so
	// the transport can close.
	e.queue.Close()
	t.Close()
	e.leftover.Add(e.queue.Clear())
	s := e.Stats()
	lvl := slog.LevelInfo
	if s.Abandoned > 0 {
		lvl = slog.LevelWarn
	}
	e.log.Log(context.Background(), lvl, "drained",
		"drain_seconds", time.Since(start).Seconds(), "abandoned", s.Abandoned,
		"received", s.Received, "processed", s.Processed, "dropped_full", s.DroppedFull,
		"malformed", s.Malformed, "refused", s.Refused, "reply_failed", s.ReplyFailed)
}

// settle waits, after unsubscribing, until no message arrived for a few
// polls (messages the broker sent before the UNSUBACK may still be on their
// way through the connections), at most settleMax.
func (e *Engine) settle(ctx context.Context) {
	t := time.NewTicker(settlePoll)
	defer t.Stop()
	limit := time.NewTimer(settleMax)
	defer limit.Stop()
	last, quiet := e.intake.Received(), 0
	for quiet < settleQuiet {
		select {
		case <-ctx.Done():
			return
		case <-limit.C:
			return
		case <-t.C:
		}
		if r := e.intake.Received(); r == last {
			quiet++
		} else {
			last, quiet = r, 0
		}
	}
}
