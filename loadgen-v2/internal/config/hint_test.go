package config

import (
	"strings"
	"testing"
)

// TestSanitize: the default INSTANCE_ID keeps only what every broker accepts
// in a topic level: letters, digits, '-' and '_'.
func TestSanitize(t *testing.T) {
	for _, tc := range []struct{ host, want string }{
		{"host-1", "host-1"},
		{"host.example.com", "host-example-com"},
		{"a/b+c#d e\tf", "a-b-c-d-e-f"},
		{"wörk_er", "w--rk_er"},
		{"", "loadgen"},
	} {
		if got := sanitize(tc.host); got != tc.want {
			t.Errorf("sanitize(%q) = %q, want %q", tc.host, got, tc.want)
		}
	}
}

// TestTopicHint: a refused response subscription names RESPONSE_TOPIC and,
// when the topic holds the instance, INSTANCE_ID, and says which character
// to avoid.
func TestTopicHint(t *testing.T) {
	for _, tc := range []struct {
		name, topic, instance string
		want                  []string
	}{
		{"dotted instance", "resp/{{instance}}/{{shard}}", "host.example.com-7",
			[]string{"RESPONSE_TOPIC=resp/{{instance}}/{{shard}}", "INSTANCE_ID=host.example.com-7", "set INSTANCE_ID to letters, digits, '-' and '_' only", "'.'"}},
		{"clean instance", "resp/{{instance}}/{{shard}}", "lg-1",
			[]string{"RESPONSE_TOPIC=resp/{{instance}}/{{shard}} with INSTANCE_ID=lg-1", "ACL"}},
		{"no instance", "answers/{{shard}}", "host.x",
			[]string{"RESPONSE_TOPIC=answers/{{shard}}; change it, or let this client subscribe to answers/3"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &Resolved{Config: Config{ResponseTopic: tc.topic, InstanceID: tc.instance}}
			h := r.topicHint("answers/3")
			for _, w := range tc.want {
				if !strings.Contains(h, w) {
					t.Errorf("hint %q lacks %q", h, w)
				}
			}
			if tc.name == "no instance" && strings.Contains(h, "INSTANCE_ID") {
				t.Errorf("hint %q names INSTANCE_ID, which made nothing of the topic", h)
			}
		})
	}
}
