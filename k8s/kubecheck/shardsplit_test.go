package main

import (
	"bytes"
	"strings"
	"testing"
)

// shardSplit is good with the worker as a StatefulSet splitting the request
// shards four ways (the shard-split overlay's shape).
var shardSplit = strings.NewReplacer(
	"kind: Deployment", "kind: StatefulSet",
	"spec:\n  selector: {matchLabels: {app: worker}}", "spec:\n  serviceName: worker-pods\n  replicas: 4\n  selector: {matchLabels: {app: worker}}",
	"            - {name: SHUTDOWN_TIMEOUT, value: 30s}", `            - {name: SHUTDOWN_TIMEOUT, value: 30s}
            - {name: SHARED_SUBSCRIPTION, value: "false"}
            - {name: WORKER_COUNT, value: "4"}
            - {name: WORKER_INDEX, value: auto}`,
).Replace(strings.Split(good, "---\napiVersion: autoscaling/v2")[0]) + `---
apiVersion: v1
kind: Service
metadata: {name: worker-pods, namespace: ns}
spec:
  clusterIP: None
  selector: {app: worker}
  ports: [{name: http, port: 8080, targetPort: http}]
`

func TestShardSplit(t *testing.T) {
	for _, tt := range []struct {
		name, old, new string // replace old with new in shardSplit; empty old = as is
		want           string
	}{
		{name: "good", want: "3 objects, 0 problems"},
		{name: "fewer pods than WORKER_COUNT", old: "replicas: 4", new: "replicas: 3",
			want: `spec.replicas is 3 but container "worker" splits the request shards WORKER_COUNT=4 ways`},
		{name: "no replicas", old: "  replicas: 4\n", new: "",
			want: `spec.replicas is unset but container "worker" splits the request shards WORKER_COUNT=4 ways`},
		{name: "shared subscription left on", old: `{name: SHARED_SUBSCRIPTION, value: "false"}`, new: `{name: SHARED_SUBSCRIPTION, value: "true"}`,
			want: `container "worker": WORKER_COUNT=4 splits the request shards only with SHARED_SUBSCRIPTION="false"`},
		{name: "bad count", old: `{name: WORKER_COUNT, value: "4"}`, new: `{name: WORKER_COUNT, value: "four"}`,
			want: `container "worker": WORKER_COUNT="four" is not a whole number of at least 1`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			in := shardSplit
			if tt.old != "" {
				if !strings.Contains(in, tt.old) {
					t.Fatalf("test bug: %q not in the shard-split deployment", tt.old)
				}
				in = strings.Replace(in, tt.old, tt.new, 1)
			}
			var out, errOut bytes.Buffer
			code := run(nil, strings.NewReader(in), &out, &errOut)
			if want := map[bool]int{true: 0, false: 1}[tt.old == ""]; code != want || !strings.Contains(out.String()+errOut.String(), tt.want) {
				t.Errorf("exit %d, want %d; output lacks %q:\n%s%s", code, want, tt.want, out.String(), errOut.String())
			}
		})
	}
	// A Deployment cannot give WORKER_INDEX=auto an ordinal.
	dep := strings.Replace(strings.Replace(shardSplit, "kind: StatefulSet", "kind: Deployment", 1), "  serviceName: worker-pods\n", "", 1)
	var out bytes.Buffer
	if code := run(nil, strings.NewReader(dep), &out, &out); code != 1 || !strings.Contains(out.String(), "WORKER_INDEX=auto needs a StatefulSet") {
		t.Errorf("Deployment: exit %d\n%s", code, out.String())
	}
}
