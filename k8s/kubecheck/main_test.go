package main

import (
	"bytes"
	"strings"
	"testing"
)

// good is a minimal deployment that satisfies every rule.
const good = `
apiVersion: v1
kind: Service
metadata: {name: worker, namespace: ns}
spec:
  selector: {app: worker}
  ports: [{name: http, port: 8080, targetPort: http}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: worker, namespace: ns}
spec:
  selector: {matchLabels: {app: worker}}
  template:
    metadata: {labels: {app: worker}}
    spec:
      terminationGracePeriodSeconds: 45
      securityContext:
        runAsNonRoot: true
        seccompProfile: {type: RuntimeDefault}
      containers:
        - name: worker
          image: example/worker:1
          ports: [{name: http, containerPort: 8080}]
          env:
            - {name: SHUTDOWN_TIMEOUT, value: 30s}
            - name: MEM
              valueFrom: {resourceFieldRef: {containerName: worker, resource: limits.memory, divisor: 1Mi}}
            - {name: GOMEMLIMIT, value: $(MEM)MiB}
          readinessProbe: {httpGet: {path: /ready, port: http}}
          resources:
            requests: {cpu: 100m, memory: 64Mi}
            limits: {cpu: "1", memory: 256Mi}
          securityContext:
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            capabilities: {drop: [ALL]}
          volumeMounts: [{name: tmp, mountPath: /tmp}]
      volumes: [{name: tmp, emptyDir: {}}]
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: worker, namespace: ns}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: worker}
  minReplicas: 2
  maxReplicas: 20
`

func TestRun(t *testing.T) {
	tests := []struct {
		name     string
		old, new string // replace old with new in good; empty old = good as is
		wantCode int
		want     string // substring of the output
	}{
		{name: "good", wantCode: 0, want: "3 objects, 0 problems"},
		{name: "unknown field", old: "terminationGracePeriodSeconds: 45", new: "terminationGracePeriodSeconds: 45\n      terminationGraceSeconds: 45",
			wantCode: 1, want: `unknown field "spec.template.spec.terminationGraceSeconds"`},
		{name: "wrong type", old: "minReplicas: 2", new: "minReplicas: two", wantCode: 1, want: "HorizontalPodAutoscaler"},
		{name: "duplicate key", old: "maxReplicas: 20", new: "maxReplicas: 20\n  maxReplicas: 30", wantCode: 1, want: `key "maxReplicas" already set`},
		{name: "writable root", old: "readOnlyRootFilesystem: true", new: "readOnlyRootFilesystem: false",
			wantCode: 1, want: `container "worker": readOnlyRootFilesystem is not true`},
		{name: "root allowed", old: "runAsNonRoot: true", new: "runAsNonRoot: false",
			wantCode: 1, want: "runAsNonRoot is not true"},
		{name: "escalation", old: "allowPrivilegeEscalation: false", new: "allowPrivilegeEscalation: true",
			wantCode: 1, want: "allowPrivilegeEscalation is not false"},
		{name: "caps kept", old: "drop: [ALL]", new: "drop: [NET_RAW]", wantCode: 1, want: "capabilities.drop does not contain ALL"},
		{name: "no seccomp", old: "seccompProfile: {type: RuntimeDefault}", new: "fsGroup: 1", wantCode: 1, want: "seccompProfile"},
		{name: "no cpu limit", old: `limits: {cpu: "1", memory: 256Mi}`, new: "limits: {memory: 256Mi}", wantCode: 1, want: "no cpu limit"},
		{name: "request above limit", old: "requests: {cpu: 100m, memory: 64Mi}", new: "requests: {cpu: 100m, memory: 1Gi}",
			wantCode: 1, want: "memory request 1Gi is above the limit 256Mi"},
		{name: "undefined env ref", old: "$(MEM)MiB", new: "$(MEMORY)MiB", wantCode: 1, want: "refers to $(MEMORY)"},
		{name: "probe port", old: "port: http}}", new: "port: web}}", wantCode: 1, want: `readinessProbe uses port "web"`},
		{name: "short grace", old: "terminationGracePeriodSeconds: 45", new: "terminationGracePeriodSeconds: 30",
			wantCode: 1, want: "terminationGracePeriodSeconds=30 does not exceed SHUTDOWN_TIMEOUT=30s"},
		{name: "service port", old: "targetPort: http", new: "targetPort: metrics", wantCode: 1, want: `targetPort "metrics"`},
		{name: "service selector", old: "selector: {app: worker}", new: "selector: {app: wrker}", wantCode: 1, want: "matches no workload"},
		{name: "hpa and replicas", old: "selector: {matchLabels: {app: worker}}", new: "replicas: 3\n  selector: {matchLabels: {app: worker}}",
			wantCode: 1, want: "sets spec.replicas=3"},
		{name: "hpa target", old: "kind: Deployment, name: worker}", new: "kind: Deployment, name: wrker}", wantCode: 1, want: "no such workload"},
		{name: "missing volume", old: "volumes: [{name: tmp", new: "volumes: [{name: scratch", wantCode: 1, want: `volumeMount "tmp" names no volume`},
		{name: "unknown kind", old: "kind: HorizontalPodAutoscaler", new: "kind: HorizontalPodScaler", wantCode: 1, want: "HorizontalPodScaler"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := good
			if tt.old != "" {
				if !strings.Contains(in, tt.old) {
					t.Fatalf("test bug: %q not in the good manifest", tt.old)
				}
				in = strings.Replace(in, tt.old, tt.new, 1)
			}
			var out, errOut bytes.Buffer
			code := run(nil, strings.NewReader(in), &out, &errOut)
			if code != tt.wantCode || !strings.Contains(out.String()+errOut.String(), tt.want) {
				t.Errorf("exit %d, want %d; output does not contain %q:\n%s%s", code, tt.wantCode, tt.want, out.String(), errOut.String())
			}
		})
	}
}

func TestStatefulSetServiceName(t *testing.T) {
	const sts = `
apiVersion: v1
kind: Service
metadata: {name: lg, namespace: ns}
spec:
  selector: {app: lg}
  ports: [{name: m, port: 8090}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: lg, namespace: ns}
spec:
  serviceName: lg
  selector: {matchLabels: {app: lg}}
  template:
    metadata: {labels: {app: lg}}
    spec:
      securityContext: {runAsNonRoot: true, seccompProfile: {type: RuntimeDefault}}
      containers:
        - name: lg
          image: example/lg:1
          resources: {requests: {cpu: 1, memory: 1Gi}, limits: {cpu: 1, memory: 1Gi}}
          securityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {drop: [ALL]}}
`
	var out bytes.Buffer
	if code := run(nil, strings.NewReader(sts), &out, &out); code != 1 || !strings.Contains(out.String(), "not a headless Service") {
		t.Errorf("exit %d, output:\n%s", code, out.String())
	}
	headless := strings.Replace(sts, "selector: {app: lg}", "clusterIP: None\n  selector: {app: lg}", 1)
	out.Reset()
	if code := run(nil, strings.NewReader(headless), &out, &out); code != 0 {
		t.Errorf("headless: exit %d, output:\n%s", code, out.String())
	}
}
