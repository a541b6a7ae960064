package config

import (
	"strings"
	"testing"
)

// TestTopicHint: a refused subscription names the variables that made it.
func TestTopicHint(t *testing.T) {
	for _, tc := range []struct {
		name   string
		c      Config
		filter string
		want   []string
	}{
		{"shared", Config{Shared: true, ShareGroup: "workers", Sub: "req/+"}, "$share/workers/req/+",
			[]string{"SHARE_GROUP=workers", "MQTT_SUB=req/+", "ACL"}},
		{"plain", Config{Sub: "req/+", WorkerCount: 1}, "req/+", []string{"MQTT_SUB=req/+"}},
		{"split", Config{Sub: "req/+", WorkerCount: 3}, "req/4", []string{"MQTT_SUB=req/+", "WORKER_COUNT=3"}},
		{"probe", Config{Shared: true, ShareGroup: "workers", Sub: "req/+"}, "$share/workers/mqtt-rr-bench/probe/00ff",
			[]string{"probe", "SHARED_SUBSCRIPTION_PROBE=false", "mqtt-rr-bench/probe/#"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := (&Resolved{Config: tc.c}).topicHint(tc.filter)
			for _, w := range tc.want {
				if !strings.Contains(h, w) {
					t.Errorf("hint %q lacks %q", h, w)
				}
			}
		})
	}
}
