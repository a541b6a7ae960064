package config

import (
	"fmt"
	"strings"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/mqttconn"
)

// topicHint names the settings that made a subscription, for one the broker
// refused (mqttconn.Options.TopicHint): SHARE_GROUP and MQTT_SUB for the
// shared subscription, MQTT_SUB (and the shard split) without it,
// SHARED_SUBSCRIPTION_PROBE for the probe's.
func (r *Resolved) topicHint(filter string) string {
	const fix = "; change it, or let the worker subscribe to it in the broker's ACL"
	switch {
	case strings.Contains(filter, "/"+mqttconn.ProbeTopicPrefix):
		return "it is the shared subscription probe's: the broker's ACL must let the worker publish and subscribe to " +
			mqttconn.ProbeTopicPrefix + "#, or set SHARED_SUBSCRIPTION_PROBE=false"
	case r.Shared:
		return fmt.Sprintf("the subscription is $share/SHARE_GROUP/MQTT_SUB with SHARE_GROUP=%s and MQTT_SUB=%s", r.ShareGroup, r.Sub) + fix
	case r.WorkerCount > 1:
		return fmt.Sprintf("the subscription is MQTT_SUB=%s with its '+' as this instance's shards (WORKER_COUNT=%d)", r.Sub, r.WorkerCount) + fix
	}
	return "the subscription is MQTT_SUB=" + r.Sub + fix
}
