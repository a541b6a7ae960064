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

// TestTickIsTheResolution: the loop wakes at most once per Tick, so with a
// fire every millisecond requests leave up to one tick after their intended
// time (the bubble's timers are exact): no later, and the worst at least a
// tick less the 1 ms between fires. Every fire due before DURATION is sent,
// and the drain ends once their deadlines have passed.
func TestTickIsTheResolution(t *testing.T) {
	for _, tick := range []time.Duration{time.Millisecond, 5 * time.Millisecond, 20 * time.Millisecond} {
		t.Run(tick.String(), func(t *testing.T) {
			// A fire every 1 ms; nobody answers.
			res := loadgentest.Resolve(t, "tcp://127.0.0.1:1", map[string]string{
				"VIRTUAL_CLIENTS": "1000", "INTERVAL_MS": "1000", "DURATION": "1s", "REQUEST_TIMEOUT": "100ms",
			})
			synctest.Test(t, func(t *testing.T) {
				n := res.VirtualClients
				sched, err := schedule.New(n, res.Interval(), res.Connections, func(c int) int { return res.ConnOf(uint32(c)) }, schedule.PerTick(n, res.Interval(), tick))
				if err != nil {
					t.Fatal(err)
				}
				table := pending.New(n, res.MaxInflight)
				b := books.New(res, sched, table, loadgentest.QuietLog())
				b.Start(time.Now())
				d := New(Params{Res: res, Schedule: sched, Table: table, Books: b, Transport: sinkTransport{res.Connections}, Tick: tick})
				if end := d.Run(context.Background(), nil); end != int64(time.Second) {
					t.Errorf("sending ended at %v, want 1s", time.Duration(end))
				}
				f := b.Final()
				if c := f.Measured; c.Scheduled != 1000 || c.RequestsSent != 1000 || c.Timeouts != 1000 || !c.Balanced() {
					t.Errorf("counts %+v: want 1000 sent and timed out", c)
				}
				lag := b.Hist.ScheduleLag.Total()
				if worst := time.Duration(lag.Max()) * time.Microsecond; worst > tick || worst < tick-time.Millisecond {
					t.Errorf("worst schedule lag %v with a tick of %v", worst, tick)
				}
			})
		})
	}
}
