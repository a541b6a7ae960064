package main

import (
	"os"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	sigsyaml "sigs.k8s.io/yaml"
)

// TestAdapterRulesSelectWorkerMetrics: the prometheus-adapter rules behind
// the queue-aware HPA (k8s/overlays/queue-autoscaling) select series that
// worker-v2 exports, so renaming a worker metric cannot silently starve the
// HPA. What the worker exports is the list its metrics test keeps true
// (worker-v2/internal/metrics/testdata/exported-metrics.txt).
func TestAdapterRulesSelectWorkerMetrics(t *testing.T) {
	const (
		rules    = "../overlays/queue-autoscaling/prometheus-adapter-rules.yaml"
		exported = "../../worker-v2/internal/metrics/testdata/exported-metrics.txt"
	)
	list, err := os.ReadFile(exported)
	if err != nil {
		t.Fatal(err)
	}
	worker := map[string]bool{}
	for _, name := range strings.Fields(string(list)) {
		worker[name] = true
	}
	f, err := os.Open(rules)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	objs, problems, err := decodeAll(rules, f)
	if err != nil || len(problems) > 0 {
		t.Fatalf("%s: %v %v", rules, err, problems)
	}
	selected := 0
	for _, o := range objs {
		cm, ok := o.obj.(*corev1.ConfigMap)
		if !ok || cm.Labels[adapterLabel] != adapterName {
			continue
		}
		var cfg adapterConfig
		if err := sigsyaml.UnmarshalStrict([]byte(cm.Data["config.yaml"]), &cfg); err != nil {
			t.Fatalf("%s: config.yaml: %v", o.id(), err)
		}
		for _, r := range append(cfg.Rules, cfg.ExternalRules...) {
			m := seriesName.FindStringSubmatch(r.SeriesQuery)
			if m == nil {
				t.Errorf("%s: seriesQuery %q names no metric", o.id(), r.SeriesQuery)
				continue
			}
			selected++
			if !worker[m[1]] {
				t.Errorf("%s selects %s, which worker-v2 does not export (%s)", rules, m[1], exported)
			}
		}
	}
	if selected == 0 {
		t.Fatalf("no seriesQuery in %s", rules)
	}
}
