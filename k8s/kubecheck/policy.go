package main

// The deployment policy of the package doc, applied to decoded objects.

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// workload is anything with a pod template.
type workload struct {
	o        object
	selector *metav1.LabelSelector
	template *corev1.PodTemplateSpec
	replicas *int32
}

func workloadOf(o object) (workload, bool) {
	switch w := o.obj.(type) {
	case *appsv1.Deployment:
		return workload{o, w.Spec.Selector, &w.Spec.Template, w.Spec.Replicas}, true
	case *appsv1.StatefulSet:
		return workload{o, w.Spec.Selector, &w.Spec.Template, w.Spec.Replicas}, true
	case *appsv1.DaemonSet:
		return workload{o, w.Spec.Selector, &w.Spec.Template, nil}, true
	case *batchv1.Job:
		return workload{o, w.Spec.Selector, &w.Spec.Template, nil}, true
	}
	return workload{}, false
}

// check applies the policy to the decoded objects and returns the problems.
func check(objs []object) []string {
	var problems []string
	add := func(o object, format string, a ...any) {
		problems = append(problems, o.id()+": "+fmt.Sprintf(format, a...))
	}

	seen := map[string]string{}
	var workloads []workload
	services := map[string]*corev1.Service{} // namespace/name
	served := servedMetrics{custom: map[string]bool{}, external: map[string]bool{}}
	for _, o := range objs {
		if prev, dup := seen[o.id()]; dup {
			add(o, "defined twice (%s and %s)", prev, o.source)
		}
		seen[o.id()] = o.source
		if w, ok := workloadOf(o); ok {
			workloads = append(workloads, w)
			checkWorkload(w, func(format string, a ...any) { add(o, format, a...) })
			checkShardSplit(w, func(format string, a ...any) { add(o, format, a...) })
			checkFleet(w, func(format string, a ...any) { add(o, format, a...) })
		}
		if s, ok := o.obj.(*corev1.Service); ok {
			services[s.Namespace+"/"+s.Name] = s
		}
		if cm, ok := o.obj.(*corev1.ConfigMap); ok && cm.Labels[adapterLabel] == adapterName {
			checkAdapterConfig(cm, &served, func(format string, a ...any) { add(o, format, a...) })
		}
	}

	checkFleetAlone(workloads, add)

	// matching returns the workloads in ns whose pod labels sel selects.
	matching := func(ns string, sel labels.Selector) []workload {
		var out []workload
		for _, w := range workloads {
			if w.o.meta().GetNamespace() == ns && sel.Matches(labels.Set(w.template.Labels)) {
				out = append(out, w)
			}
		}
		return out
	}

	for _, o := range objs {
		switch v := o.obj.(type) {
		case *corev1.Service:
			if len(v.Spec.Selector) == 0 {
				continue // endpoints managed elsewhere
			}
			ws := matching(v.Namespace, labels.SelectorFromSet(v.Spec.Selector))
			if len(ws) == 0 {
				add(o, "selector %v matches no workload", v.Spec.Selector)
				continue
			}
			for _, p := range v.Spec.Ports {
				if p.TargetPort.Type != intstr.String {
					continue
				}
				for _, w := range ws {
					if !declaresPort(w.template.Spec.Containers, p.TargetPort.StrVal) {
						add(o, "port %q: targetPort %q is not a container port name in %s",
							p.Name, p.TargetPort.StrVal, w.o.id())
					}
				}
			}
		case *appsv1.StatefulSet:
			s, ok := services[v.Namespace+"/"+v.Spec.ServiceName]
			switch {
			case v.Spec.ServiceName == "":
				add(o, "spec.serviceName is empty")
			case !ok:
				add(o, "spec.serviceName %q: no such Service", v.Spec.ServiceName)
			case s.Spec.ClusterIP != corev1.ClusterIPNone:
				add(o, "spec.serviceName %q is not a headless Service (clusterIP: None)", v.Spec.ServiceName)
			}
		case *policyv1.PodDisruptionBudget:
			sel, err := metav1.LabelSelectorAsSelector(v.Spec.Selector)
			if err != nil {
				add(o, "selector: %v", err)
			} else if len(matching(v.Namespace, sel)) == 0 {
				add(o, "selector matches no workload")
			}
		case *autoscalingv2.HorizontalPodAutoscaler:
			ref := v.Spec.ScaleTargetRef
			var target *workload
			for i, w := range workloads {
				m := w.o.meta()
				if m.GetNamespace() == v.Namespace && m.GetName() == ref.Name && kindOf(w.o) == ref.Kind {
					target = &workloads[i]
				}
			}
			if target == nil {
				add(o, "scaleTargetRef %s %s: no such workload", ref.Kind, ref.Name)
				continue
			}
			if target.replicas != nil {
				add(o, "%s sets spec.replicas=%d; leave it unset, the HPA owns it (every apply would reset it)",
					target.o.id(), *target.replicas)
			}
			if v.Spec.MinReplicas != nil && *v.Spec.MinReplicas > v.Spec.MaxReplicas {
				add(o, "minReplicas=%d is greater than maxReplicas=%d", *v.Spec.MinReplicas, v.Spec.MaxReplicas)
			}
			checkHPAMetrics(v, &served, func(format string, a ...any) { add(o, format, a...) })
		}
	}
	sort.Strings(problems)
	return problems
}

func kindOf(o object) string {
	id := o.id()
	kind, _, _ := strings.Cut(id, " ")
	return kind
}

func declaresPort(cs []corev1.Container, name string) bool {
	for _, c := range cs {
		for _, p := range c.Ports {
			if p.Name == name {
				return true
			}
		}
	}
	return false
}

var varRef = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)`)

// checkWorkload applies the per-pod policy to one workload.
func checkWorkload(w workload, fail func(format string, a ...any)) {
	if _, isJob := w.o.obj.(*batchv1.Job); isJob && w.selector == nil {
		// The Job controller generates it (manualSelector unset).
	} else if w.selector == nil {
		fail("spec.selector is missing")
	} else if sel, err := metav1.LabelSelectorAsSelector(w.selector); err != nil {
		fail("spec.selector: %v", err)
	} else if !sel.Matches(labels.Set(w.template.Labels)) {
		fail("spec.selector does not match the pod template labels")
	}

	spec := &w.template.Spec
	psc := spec.SecurityContext
	if psc == nil {
		psc = &corev1.PodSecurityContext{}
	}
	volumes := map[string]bool{}
	for _, v := range spec.Volumes {
		volumes[v.Name] = true
	}
	containerNames := map[string]bool{}
	all := slices.Concat(spec.InitContainers, spec.Containers)
	for _, c := range all {
		containerNames[c.Name] = true
	}

	for _, c := range all {
		cfail := func(format string, a ...any) { fail("container %q: "+format, append([]any{c.Name}, a...)...) }
		sc := c.SecurityContext
		if sc == nil {
			sc = &corev1.SecurityContext{}
		}
		if !isTrue(sc.RunAsNonRoot) && !(sc.RunAsNonRoot == nil && isTrue(psc.RunAsNonRoot)) {
			cfail("runAsNonRoot is not true")
		}
		if uid := firstInt64(sc.RunAsUser, psc.RunAsUser); uid != nil && *uid == 0 {
			cfail("runAsUser is 0")
		}
		if !isTrue(sc.ReadOnlyRootFilesystem) {
			cfail("readOnlyRootFilesystem is not true")
		}
		if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			cfail("allowPrivilegeEscalation is not false")
		}
		if isTrue(sc.Privileged) {
			cfail("privileged")
		}
		if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
			cfail("capabilities.drop does not contain ALL")
		} else if len(sc.Capabilities.Add) > 0 {
			cfail("capabilities.add %v", sc.Capabilities.Add)
		}
		seccomp := sc.SeccompProfile
		if seccomp == nil {
			seccomp = psc.SeccompProfile
		}
		if seccomp == nil || (seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault && seccomp.Type != corev1.SeccompProfileTypeLocalhost) {
			cfail("seccompProfile is not RuntimeDefault (or Localhost)")
		}

		for _, res := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			req, hasReq := c.Resources.Requests[res]
			lim, hasLim := c.Resources.Limits[res]
			if !hasReq {
				cfail("no %s request", res)
			}
			if !hasLim {
				cfail("no %s limit", res)
			}
			if hasReq && hasLim && req.Cmp(lim) > 0 {
				cfail("%s request %s is above the limit %s", res, req.String(), lim.String())
			}
		}

		for _, p := range []struct {
			name  string
			probe *corev1.Probe
		}{{"startupProbe", c.StartupProbe}, {"readinessProbe", c.ReadinessProbe}, {"livenessProbe", c.LivenessProbe}} {
			if p.probe == nil {
				continue
			}
			var port *string
			switch {
			case p.probe.HTTPGet != nil && p.probe.HTTPGet.Port.Type == intstr.String:
				port = &p.probe.HTTPGet.Port.StrVal
			case p.probe.TCPSocket != nil && p.probe.TCPSocket.Port.Type == intstr.String:
				port = &p.probe.TCPSocket.Port.StrVal
			}
			if port != nil && !declaresPort([]corev1.Container{c}, *port) {
				cfail("%s uses port %q, which the container does not declare", p.name, *port)
			}
		}

		for _, m := range c.VolumeMounts {
			if !volumes[m.Name] {
				cfail("volumeMount %q names no volume", m.Name)
			}
		}

		defined := map[string]bool{}
		for _, e := range c.Env {
			for _, ref := range varRef.FindAllStringSubmatch(e.Value, -1) {
				if !defined[ref[1]] && len(c.EnvFrom) == 0 {
					cfail("env %s refers to $(%s), which is not defined before it", e.Name, ref[1])
				}
			}
			if e.ValueFrom != nil && e.ValueFrom.ResourceFieldRef != nil {
				if cn := e.ValueFrom.ResourceFieldRef.ContainerName; cn != "" && !containerNames[cn] {
					cfail("env %s: resourceFieldRef.containerName %q is no container", e.Name, cn)
				}
			}
			defined[e.Name] = true
		}

		if v, ok := envValue(c, "SHUTDOWN_TIMEOUT"); ok {
			d, err := time.ParseDuration(v)
			grace := int64(corev1.DefaultTerminationGracePeriodSeconds)
			if spec.TerminationGracePeriodSeconds != nil {
				grace = *spec.TerminationGracePeriodSeconds
			}
			switch {
			case err != nil:
				cfail("SHUTDOWN_TIMEOUT=%q is not a duration", v)
			case time.Duration(grace)*time.Second <= d:
				cfail("terminationGracePeriodSeconds=%d does not exceed SHUTDOWN_TIMEOUT=%s", grace, v)
			}
		}
	}
}

func envValue(c corev1.Container, name string) (string, bool) {
	for _, e := range c.Env {
		if e.Name == name && e.ValueFrom == nil {
			return e.Value, true
		}
	}
	return "", false
}

func isTrue(b *bool) bool { return b != nil && *b }

func firstInt64(a, b *int64) *int64 {
	if a != nil {
		return a
	}
	return b
}
