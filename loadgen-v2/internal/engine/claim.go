package engine

import (
	"context"
	"time"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/loadgen-v2/internal/claim"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/loadgen-v2/internal/report"
)

// claimConnectTimeout is how long a run may take to connect before it
// sends (the connection pool's default connect timeout): part of the window
// a claim announces.
const claimConnectTimeout = 10 * time.Second

// takeClaim claims this run's instance id (package claim), logging at once,
// as a WARNING, every other run found claiming it — before this run sends,
// or the moment the other starts.
func (e *Engine) takeClaim(ctx context.Context) *claim.Claim {
	res := e.res
	var window time.Duration
	if res.Duration > 0 {
		window = claimConnectTimeout + res.Duration + res.RequestTimeout // connect, send, drain
		if f := res.Fleet; f != nil {
			window += f.Timeout + f.Lead // the wait for the fleet's start
		}
	}
	opts := res.MQTT
	opts.Logger = e.log
	return claim.Take(ctx, claim.Options{
		Instance: res.InstanceID, RunID: res.RunName(), Window: window,
		MQTT: opts, ClientID: res.MQTT.ClientIDPrefix + "-claim", Log: e.log,
		OnConflict: func(other claim.Record) {
			e.log.Warn(report.ClaimConflict("INSTANCE_ID="+res.InstanceID, []string{other.String()}), "claim_topic", claim.Topic(res.InstanceID))
		},
	})
}

// claimInstance claims the instance (nil claimer: no claim, nil).
func (e *Engine) claimInstance(ctx context.Context) *claim.Claim {
	if e.claimer == nil {
		return nil
	}
	return e.claimer(ctx)
}

// releaseClaim returns the other runs' claims c saw, described, and
// releases c (nil: no claim).
func releaseClaim(c *claim.Claim) []string {
	if c == nil {
		return nil
	}
	var out []string
	for _, o := range c.Conflicts() {
		out = append(out, o.String())
	}
	c.Release(time.Second)
	return out
}
