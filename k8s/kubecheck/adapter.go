package main

import (
	"fmt"
	"regexp"
	"strings"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	sigsyaml "sigs.k8s.io/yaml"
)

// prometheus-adapter serves Prometheus series as custom (and external)
// metrics for HorizontalPodAutoscalers. Its configuration (config.yaml, read
// with --config) lives in a ConfigMap; the ones this deployment ships carry
// adapterLabel. The types mirror the adapter's own
// (sigs.k8s.io/prometheus-adapter pkg/config) so that a misspelled field is
// an error here, not a rule the adapter silently ignores.

// adapterLabel marks a ConfigMap holding a prometheus-adapter config.yaml.
const adapterLabel = "app.kubernetes.io/name"

const adapterName = "prometheus-adapter"

type adapterConfig struct {
	Rules         []adapterRule   `json:"rules"`
	ExternalRules []adapterRule   `json:"externalRules,omitempty"`
	ResourceRules *map[string]any `json:"resourceRules,omitempty"`
}

type adapterRule struct {
	SeriesQuery   string `json:"seriesQuery"`
	SeriesFilters []struct {
		Is    string `json:"is,omitempty"`
		IsNot string `json:"isNot,omitempty"`
	} `json:"seriesFilters,omitempty"`
	Resources struct {
		Template  string `json:"template,omitempty"`
		Overrides map[string]struct {
			Group    string `json:"group,omitempty"`
			Resource string `json:"resource"`
		} `json:"overrides,omitempty"`
	} `json:"resources"`
	Name struct {
		Matches string `json:"matches"`
		As      string `json:"as"`
	} `json:"name"`
	MetricsQuery           string `json:"metricsQuery,omitempty"`
	LabelValueReplacements []struct {
		Find    string `json:"find,omitempty"`
		Replace string `json:"replace,omitempty"`
	} `json:"labelValueReplacements,omitempty"`
}

// seriesName matches the metric name a series selector starts with.
var seriesName = regexp.MustCompile(`^\s*([a-zA-Z_:][a-zA-Z0-9_:]*)`)

// servedMetrics are the metric names the adapter configs of a deployment
// serve, each with whether its rule maps the pod resource.
type servedMetrics struct {
	configs  int
	custom   map[string]bool // name → maps pods
	external map[string]bool
}

// checkAdapterConfig validates the prometheus-adapter config of ConfigMap cm
// and adds what it serves to s.
func checkAdapterConfig(cm *corev1.ConfigMap, s *servedMetrics, fail func(format string, a ...any)) {
	raw, ok := cm.Data["config.yaml"]
	if !ok {
		fail("labelled %s=%s but has no config.yaml", adapterLabel, adapterName)
		return
	}
	var cfg adapterConfig
	if err := sigsyaml.UnmarshalStrict([]byte(raw), &cfg); err != nil {
		fail("config.yaml: %v", err)
		return
	}
	s.configs++
	if len(cfg.Rules)+len(cfg.ExternalRules) == 0 && cfg.ResourceRules == nil {
		fail("config.yaml has no rules")
	}
	for kind, rules := range map[string][]adapterRule{"rules": cfg.Rules, "externalRules": cfg.ExternalRules} {
		for i, r := range rules {
			name, pods := checkAdapterRule(r, func(format string, a ...any) {
				fail("config.yaml %s[%d]: "+format, append([]any{kind, i}, a...)...)
			})
			if name == "" {
				continue
			}
			if kind == "rules" {
				s.custom[name] = s.custom[name] || pods
			} else {
				s.external[name] = true
			}
		}
	}
}

// checkAdapterRule validates one rule and returns the metric name it serves
// ("" when it cannot be told from the rule) and whether it maps pods.
func checkAdapterRule(r adapterRule, fail func(format string, a ...any)) (string, bool) {
	if strings.TrimSpace(r.SeriesQuery) == "" {
		fail("seriesQuery is empty")
	}
	for _, part := range []string{"<<.Series>>", "<<.LabelMatchers>>"} {
		if r.MetricsQuery != "" && !strings.Contains(r.MetricsQuery, part) {
			fail("metricsQuery %q does not use %s", r.MetricsQuery, part)
		}
	}
	if r.MetricsQuery != "" && !strings.Contains(r.MetricsQuery, "<<.GroupBy>>") {
		fail("metricsQuery %q does not group by <<.GroupBy>>: every pod would get the same value", r.MetricsQuery)
	}
	pods, namespaces := false, false
	for label, gr := range r.Resources.Overrides {
		switch gr.Resource {
		case "pod", "pods":
			pods = true
		case "namespace", "namespaces":
			namespaces = true
		case "":
			fail("resources.overrides[%s]: resource is empty", label)
		}
		if !regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`).MatchString(label) {
			fail("resources.overrides: %q is not a Prometheus label name", label)
		} else if !strings.Contains(r.SeriesQuery, label) && r.Resources.Template == "" {
			fail("resources.overrides[%s]: seriesQuery %q does not select on label %s", label, r.SeriesQuery, label)
		}
	}
	if r.Resources.Template != "" {
		pods, namespaces = true, true // <<.Resource>> maps every resource label it finds
	}
	if pods && !namespaces {
		fail("maps pods but no namespace label: the adapter cannot serve namespaced pod metrics")
	}
	var re *regexp.Regexp
	if r.Name.Matches != "" {
		var err error
		if re, err = regexp.Compile(r.Name.Matches); err != nil {
			fail("name.matches %q: %v", r.Name.Matches, err)
			return "", pods
		}
	}
	m := seriesName.FindStringSubmatch(r.SeriesQuery)
	if m == nil {
		return "", pods // a {__name__=~...} selector: the names depend on the series
	}
	series := m[1]
	switch {
	case re == nil:
		return series, pods
	case !re.MatchString(series):
		fail("name.matches %q does not match the series %s", r.Name.Matches, series)
		return "", pods
	case r.Name.As == "":
		if re.NumSubexp() > 1 {
			fail("name.as is empty and name.matches has %d capture groups", re.NumSubexp())
			return "", pods
		}
		if re.NumSubexp() == 1 {
			return re.ReplaceAllString(series, "${1}"), pods
		}
		return series, pods
	}
	return re.ReplaceAllString(series, r.Name.As), pods
}

// checkHPAMetrics checks that every custom or external metric of hpa is
// served by an adapter rule of the deployment, and the target types the API
// allows.
func checkHPAMetrics(hpa *autoscalingv2.HorizontalPodAutoscaler, s *servedMetrics, fail func(format string, a ...any)) {
	for i, m := range hpa.Spec.Metrics {
		var name, kind string
		var served, needPods bool
		switch m.Type {
		case autoscalingv2.PodsMetricSourceType:
			if m.Pods == nil {
				fail("metrics[%d]: type Pods without pods", i)
				continue
			}
			name, kind, needPods = m.Pods.Metric.Name, "pods", true
			if m.Pods.Target.Type != autoscalingv2.AverageValueMetricType || m.Pods.Target.AverageValue == nil {
				fail("metrics[%d]: pods metric %q: target must be type AverageValue with averageValue (the only target Pods metrics take)", i, name)
			}
			pods, ok := s.custom[name]
			served = ok && pods
		case autoscalingv2.ObjectMetricSourceType:
			if m.Object == nil {
				fail("metrics[%d]: type Object without object", i)
				continue
			}
			name, kind = m.Object.Metric.Name, "object"
			_, served = s.custom[name]
		case autoscalingv2.ExternalMetricSourceType:
			if m.External == nil {
				fail("metrics[%d]: type External without external", i)
				continue
			}
			name, kind = m.External.Metric.Name, "external"
			served = s.external[name]
		default:
			continue
		}
		if !served {
			why := fmt.Sprintf("no prometheus-adapter rule serves it (a ConfigMap labelled %s=%s with config.yaml, in this deployment)", adapterLabel, adapterName)
			if needPods {
				if _, ok := s.custom[name]; ok {
					why = "its prometheus-adapter rule maps no pod resource"
				}
			}
			fail("metrics[%d]: %s metric %q: %s", i, kind, name, why)
		}
	}
}
