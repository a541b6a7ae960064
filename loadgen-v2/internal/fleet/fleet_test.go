package fleet_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/brokertest"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/envconf"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/loadgen-v2/internal/config"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/loadgen-v2/internal/fleet"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/loadgen-v2/internal/loadgentest"
)

// member resolves instance index of fleet id (size n) on broker url.
func member(t *testing.T, url, id string, index, n int, env map[string]string) *config.Resolved {
	t.Helper()
	all := map[string]string{"FLEET_ID": id, "FLEET_SIZE": itoa(n), "FLEET_INDEX": itoa(index), "FLEET_COORDINATOR": "external",
		"FLEET_TIMEOUT": "30s", "INSTANCE_ID": id + "-" + itoa(index)}
	for k, v := range env {
		all[k] = v
	}
	return loadgentest.Resolve(t, url, all)
}

func itoa(i int) string { return strconv.Itoa(i) }

type joined struct {
	at  time.Time
	err error
}

// join runs the members' joins concurrently.
func join(ctx context.Context, ms []*fleet.Member) []chan joined {
	var out []chan joined
	for _, m := range ms {
		ch := make(chan joined, 1)
		go func() {
			at, err := m.Join(ctx)
			ch <- joined{at, err}
		}()
		out = append(out, ch)
	}
	return out
}

// TestCoordinateStartsTheMembersTogether: every member gets the one start
// the coordinator announced; a coordinator stopped before the reports came
// names every member missing.
func TestCoordinateStartsTheMembersTogether(t *testing.T) {
	b := brokertest.Start(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var ms []*fleet.Member
	for i := range 3 {
		m := fleet.NewMember(member(t, b.URL(), "tog", i, 3, nil), loadgentest.QuietLog())
		t.Cleanup(m.Close)
		ms = append(ms, m)
	}
	res := member(t, b.URL(), "tog", 0, 3, nil)
	type outcome struct {
		r   *fleet.Result
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		r, err := fleet.Coordinate(ctx, fleet.Options{MQTT: res.MQTT, ID: "tog", Size: 3, Timeout: 30 * time.Second, Lead: 200 * time.Millisecond, Log: loadgentest.QuietLog()})
		done <- outcome{r, err}
	}()
	var ats []time.Time
	for i, ch := range join(t.Context(), ms) {
		j := <-ch
		if j.err != nil {
			t.Fatalf("member %d: %v", i, j.err)
		}
		ats = append(ats, j.at)
	}
	for i := range ats {
		if !ats[i].Equal(ats[0]) {
			t.Errorf("member %d starts at %v, member 0 at %v", i, ats[i], ats[0])
		}
	}
	cancel() // before any report
	out := <-done
	if out.err != nil {
		t.Fatal(out.err)
	}
	if !out.r.Start.Equal(ats[0]) || out.r.Merged != nil || out.r.Code() != 3 || len(out.r.Missing) != 3 ||
		!strings.Contains(out.r.Missing[2], "index 2 (tog-2 on host") || !strings.Contains(out.r.Missing[2], "the coordinator was stopped before it reported") {
		t.Errorf("result: start %v (members %v), merged %v, code %d, missing %q", out.r.Start, ats[0], out.r.Merged, out.r.Code(), out.r.Missing)
	}
}

// TestCoordinateRefuses: overlapping client ranges and a different
// FLEET_SIZE are refused (exit 2 for every member, the message naming the
// cause); a fleet that never fills up is refused with code 1 naming the
// missing indexes once FLEET_TIMEOUT has passed.
func TestCoordinateRefuses(t *testing.T) {
	b := brokertest.Start(t)
	tests := []struct {
		name string
		envs []map[string]string
		size int
		code int
		want string
	}{
		{"overlap", []map[string]string{nil, {"CLIENT_ID_OFFSET": "1000"}}, 2, 2, "they overlap"},
		{"size", []map[string]string{nil, {"FLEET_SIZE": "3"}}, 2, 2, "has FLEET_SIZE=3"},
		// (whether the coordinator heard member 0 within its 1 s depends on
		// the machine's load: only index 2 is missing for sure)
		{"missing", []map[string]string{{"FLEET_TIMEOUT": "5s"}}, 3, 1, "index 2. Start them (FLEET_ID=refuse-missing, FLEET_SIZE=3"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			id := "refuse-" + tc.name
			var ms []*fleet.Member
			for i, env := range tc.envs {
				n := tc.size
				if env["FLEET_SIZE"] == "3" {
					n = 3
				}
				m := fleet.NewMember(member(t, b.URL(), id, i, n, env), loadgentest.QuietLog())
				t.Cleanup(m.Close)
				ms = append(ms, m)
			}
			res := member(t, b.URL(), id, 0, tc.size, nil)
			timeout := 30 * time.Second
			if tc.code == 1 {
				timeout = time.Second
			}
			chs := join(ctx, ms)
			_, err := fleet.Coordinate(ctx, fleet.Options{MQTT: res.MQTT, ID: id, Size: tc.size, Timeout: timeout, Lead: 200 * time.Millisecond, Log: loadgentest.QuietLog()})
			var ref *fleet.Refusal
			if !errors.As(err, &ref) || ref.Code != tc.code || !strings.Contains(ref.Reason, tc.want) {
				t.Fatalf("Coordinate: %v, want a refusal with code %d naming %q", err, tc.code, tc.want)
			}
			for i, ch := range chs {
				j := <-ch
				if tc.code == 1 {
					// told by the coordinator, or (unheard) its own FLEET_TIMEOUT
					if !errors.Is(j.err, fleet.ErrNotAssembled) {
						t.Errorf("member %d: %v, want ErrNotAssembled", i, j.err)
					}
					continue
				}
				if !errors.Is(j.err, envconf.ErrInvalid) || !strings.Contains(j.err.Error(), tc.want) {
					t.Errorf("member %d: %v; want the refusal (invalid configuration: %v)", i, j.err, tc.code == 2)
				}
			}
		})
	}
}
