package main

import (
	"bytes"
	"errors"
	"os/exec"
	"path/filepath"
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

// adapterDeployment is good with the HPA on two Pods metrics and CPU, and the
// prometheus-adapter rules that serve them.
var adapterDeployment = strings.Replace(good, "  maxReplicas: 20\n", `  maxReplicas: 20
  metrics:
    - type: Pods
      pods:
        metric: {name: mqttrr_worker_utilization}
        target: {type: AverageValue, averageValue: 700m}
    - type: Pods
      pods:
        metric: {name: mqttrr_worker_queue_oldest_seconds}
        target: {type: AverageValue, averageValue: 500m}
    - type: Resource
      resource:
        name: cpu
        target: {type: Utilization, averageUtilization: 70}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: adapter-rules
  namespace: monitoring
  labels: {app.kubernetes.io/name: prometheus-adapter}
data:
  config.yaml: |
    rules:
      - seriesQuery: 'mqttrr_worker_utilization_ratio{namespace!="",instance!=""}'
        resources:
          overrides:
            namespace: {resource: namespace}
            instance: {resource: pod}
        name: {matches: ^(.*)_ratio$, as: "${1}"}
        metricsQuery: max by (<<.GroupBy>>) (avg_over_time(<<.Series>>{<<.LabelMatchers>>}[1m]))
      - seriesQuery: 'mqttrr_worker_queue_oldest_seconds{namespace!="",instance!=""}'
        resources:
          overrides:
            namespace: {resource: namespace}
            instance: {resource: pod}
        name: {matches: "", as: ""}
        metricsQuery: max by (<<.GroupBy>>) (max_over_time(<<.Series>>{<<.LabelMatchers>>}[30s]))
`, 1)

func TestPrometheusAdapter(t *testing.T) {
	tests := []struct {
		name     string
		old, new string // replace old with new in adapterDeployment; empty old = as is
		want     string // substring of the output
	}{
		{name: "good", want: "4 objects, 0 problems"},
		{name: "no adapter rules", old: "labels: {app.kubernetes.io/name: prometheus-adapter}", new: "labels: {app: other}",
			want: `metrics[0]: pods metric "mqttrr_worker_utilization": no prometheus-adapter rule serves it`},
		{name: "renamed metric", old: "as: \"${1}\"", new: "as: \"${1}_x\"",
			want: `pods metric "mqttrr_worker_utilization": no prometheus-adapter rule serves it`},
		{name: "no pod mapping", old: "            instance: {resource: pod}\n        name: {matches: ^", new: "        name: {matches: ^",
			want: `pods metric "mqttrr_worker_utilization": its prometheus-adapter rule maps no pod resource`},
		{name: "unknown rule field", old: "        metricsQuery: max by (<<.GroupBy>>) (avg", new: "        metricQuery: max by (<<.GroupBy>>) (avg",
			want: `config.yaml: error unmarshaling JSON: while decoding JSON: json: unknown field "metricQuery"`},
		{name: "no config.yaml", old: "  config.yaml: |", new: "  rules.yaml: |", want: "labelled app.kubernetes.io/name=prometheus-adapter but has no config.yaml"},
		{name: "query without series", old: "(avg_over_time(<<.Series>>{", new: "(avg_over_time(mqttrr_worker_utilization_ratio{",
			want: `config.yaml rules[0]: metricsQuery "max by (<<.GroupBy>>) (avg_over_time(mqttrr_worker_utilization_ratio{<<.LabelMatchers>>}[1m]))" does not use <<.Series>>`},
		{name: "query without group by", old: "max by (<<.GroupBy>>) (avg_over_time(<<.Series>>{<<.LabelMatchers>>}[1m]))", new: "avg_over_time(<<.Series>>{<<.LabelMatchers>>}[1m])",
			want: "does not group by <<.GroupBy>>: every pod would get the same value"},
		{name: "bad name regexp", old: "matches: ^(.*)_ratio$", new: "matches: ^(.*_ratio$",
			want: "config.yaml rules[0]: name.matches \"^(.*_ratio$\": error parsing regexp"},
		{name: "name regexp misses the series", old: "matches: ^(.*)_ratio$", new: "matches: ^(.*)_total$",
			want: `config.yaml rules[0]: name.matches "^(.*)_total$" does not match the series mqttrr_worker_utilization_ratio`},
		{name: "override label not selected", old: `'mqttrr_worker_utilization_ratio{namespace!="",instance!=""}'`, new: `'mqttrr_worker_utilization_ratio{namespace!=""}'`,
			want: `config.yaml rules[0]: resources.overrides[instance]: seriesQuery "mqttrr_worker_utilization_ratio{namespace!=\"\"}" does not select on label instance`},
		{name: "pods without namespace", old: "            namespace: {resource: namespace}\n            instance: {resource: pod}\n        name: {matches: ^", new: "            instance: {resource: pod}\n        name: {matches: ^",
			want: "config.yaml rules[0]: maps pods but no namespace label"},
		{name: "pods target utilization", old: "target: {type: AverageValue, averageValue: 700m}", new: "target: {type: Utilization, averageUtilization: 70}",
			want: `metrics[0]: pods metric "mqttrr_worker_utilization": target must be type AverageValue with averageValue`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := adapterDeployment
			if tt.old != "" {
				if !strings.Contains(in, tt.old) {
					t.Fatalf("test bug: %q not in the adapter deployment", tt.old)
				}
				in = strings.Replace(in, tt.old, tt.new, 1)
			}
			wantCode := 1
			if tt.old == "" {
				wantCode = 0
			}
			var out, errOut bytes.Buffer
			code := run(nil, strings.NewReader(in), &out, &errOut)
			if code != wantCode || !strings.Contains(out.String()+errOut.String(), tt.want) {
				t.Errorf("exit %d, want %d; output does not contain %q:\n%s%s", code, wantCode, tt.want, out.String(), errOut.String())
			}
		})
	}
}

// TestRepositoryManifests renders the repository's deployments (the base and
// every overlay) with kubectl's kustomize and checks each, so an overlay
// that check-ops.sh does not render is still validated. It needs kubectl (or
// kustomize); without either it is skipped.
func TestRepositoryManifests(t *testing.T) {
	var render func(dir string) ([]byte, error)
	if path, err := exec.LookPath("kubectl"); err == nil {
		render = func(dir string) ([]byte, error) {
			return exec.Command(path, "kustomize", "--load-restrictor", "LoadRestrictionsNone", dir).Output()
		}
	} else if path, err := exec.LookPath("kustomize"); err == nil {
		render = func(dir string) ([]byte, error) {
			return exec.Command(path, "build", "--load-restrictor", "LoadRestrictionsNone", dir).Output()
		}
	} else {
		t.Skip("neither kubectl nor kustomize installed")
	}
	dirs, err := filepath.Glob("../overlays/*/kustomization.yaml")
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no overlays found: %v", err)
	}
	dirs = append([]string{"../kustomization.yaml"}, dirs...)
	for _, k := range dirs {
		dir := filepath.Dir(k)
		t.Run(dir, func(t *testing.T) {
			yaml, err := render(dir)
			if err != nil {
				var ee *exec.ExitError
				if errors.As(err, &ee) {
					t.Fatalf("render %s: %v\n%s", dir, err, ee.Stderr)
				}
				t.Fatalf("render %s: %v", dir, err)
			}
			var out bytes.Buffer
			if code := run(nil, bytes.NewReader(yaml), &out, &out); code != 0 {
				t.Errorf("%s: exit %d\n%s", dir, code, out.String())
			}
			t.Log(strings.TrimSpace(out.String()))
		})
	}
}
