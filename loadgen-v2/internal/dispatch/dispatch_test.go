package dispatch

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/loadgen-v2/internal/books"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/loadgen-v2/internal/loadgentest"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/loadgen-v2/internal/pending"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/loadgen-v2/internal/schedule"
)

// TestLagIsTheWaitersLateness: on a 1 ms grid the loop wakes exactly at
// each cell's time, so with an exact waiter (the bubble's timers) no request
// is late; with a waiter that oversleeps by x < 1 ms every request after the
// first cell leaves exactly x late; with x ≥ 1 ms the loop catches up
// several cells per wake, each fire at most x late. Late fires are measured
// from their intended time all the same (coordinated omission stays out),
// and books.Sends tells each fire's own lag, the one the histogram holds. Every fire
// due before DURATION is sent, and the drain ends once their deadlines have
// passed.
func TestLagIsTheWaitersLateness(t *testing.T) {
	for _, late := range []time.Duration{0, 70 * time.Microsecond, 3 * time.Millisecond} {
		t.Run(late.String(), func(t *testing.T) {
			// A fire every 250 µs, four to a 1 ms cell; nobody answers.
			res := loadgentest.Resolve(t, "tcp://127.0.0.1:1", map[string]string{
				"VIRTUAL_CLIENTS": "4000", "INTERVAL_MS": "1000", "DURATION": "1s", "REQUEST_TIMEOUT": "100ms",
			})
			synctest.Test(t, func(t *testing.T) {
				n := res.VirtualClients
				sched, err := schedule.New(n, res.Interval(), res.Connections, func(c int) int { return res.ConnOf(uint32(c)) }, schedule.PerTick(n, res.Interval(), DefaultGrid))
				if err != nil {
					t.Fatal(err)
				}
				sched = sched.OnGrid(DefaultGrid)
				table := pending.New(n, res.MaxInflight)
				b := books.New(res, sched, table, loadgentest.QuietLog())
				b.Start(time.Now())
				wakes := 0
				wait := func(ctx context.Context, stop <-chan struct{}, d time.Duration) bool {
					wakes++
					return TimerWait(ctx, stop, d+late)
				}
				d := New(Params{Res: res, Schedule: sched, Table: table, Books: b, Transport: sinkTransport{res.Connections}, Wait: wait})
				end := d.Run(context.Background(), nil)
				if end != int64(time.Second) {
					t.Errorf("sending ended at %v, want 1s", time.Duration(end))
				}
				f := b.Final()
				if c := f.Measured; c.Scheduled != 4000 || c.RequestsSent != 4000 || c.Timeouts != 4000 || !c.Balanced() {
					t.Errorf("counts %+v: want 4000 sent and timed out", c)
				}
				// The histogram records whole µs, at least 1, to 3 digits.
				lag := b.Hist.ScheduleLag.Total()
				if want := max(late.Microseconds(), 1); lag.TotalCount() != 4000 || !lag.ValuesAreEquivalent(lag.Max(), want) {
					t.Errorf("schedule lag: %d samples, max %d µs, want 4000 and %d µs", lag.TotalCount(), lag.Max(), want)
				}
				var sum int64
				for fire := range uint64(4000) {
					sent, ok := b.Sends.SentAt(fire)
					at := sched.FireTime(fire)
					l := sent - at
					switch {
					case !ok || l < 0 || l > int64(late):
						t.Fatalf("fire %d (intended %v): sent at %v (known %v), want within %v", fire, time.Duration(at), time.Duration(sent), ok, late)
					case late < DefaultGrid && at > 0 && l != int64(late):
						t.Fatalf("fire %d (intended %v): %v late, want exactly %v", fire, time.Duration(at), time.Duration(l), late)
					}
					sum += max(l/1000, 1)
				}
				if got := int64(lag.Mean()*4000 + 0.5); got < sum || got > sum+sum/1000 {
					t.Errorf("the histogram's lags add up to %d µs, Sends' to %d µs", got, sum)
				}
				if _, ok := b.Sends.SentAt(4000); ok {
					t.Error("SentAt(4000): a fire never taken is known")
				}
				// One wake per 1 ms cell while sending (1,000), then the
				// drain: never one per fire (4,000).
				if late == 0 && (wakes < 1000 || wakes > 1000+100) {
					t.Errorf("%d wakes, want one per cell (1000) plus the drain's", wakes)
				}
			})
		})
	}
}
