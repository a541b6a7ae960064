package config

import (
	"fmt"
	"strings"
)

// topicHint names the settings that made a response topic, for a
// subscription the broker refused (mqttconn.Options.TopicHint): RESPONSE_TOPIC
// and, when it holds {{instance}}, INSTANCE_ID, with what to change.
func (r *Resolved) topicHint(filter string) string {
	h := "the response topic comes from RESPONSE_TOPIC=" + r.ResponseTopic
	if strings.Contains(r.ResponseTopic, "{{instance}}") {
		h += " with INSTANCE_ID=" + r.InstanceID
		for i := range len(r.InstanceID) {
			if !topicSafe(r.InstanceID[i]) {
				return h + fmt.Sprintf("; brokers differ in what they accept in a topic level (NATS refuses '.'): "+
					"set INSTANCE_ID to letters, digits, '-' and '_' only (%q has %q)", r.InstanceID, r.InstanceID[i])
			}
		}
	}
	return h + "; change it, or let this client subscribe to " + filter + " in the broker's ACL"
}
