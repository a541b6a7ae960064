// Command kubecheck validates rendered Kubernetes manifests without a
// cluster.
//
// Every YAML document must decode strictly into the typed Kubernetes API
// object of its apiVersion and kind: unknown or misspelled fields, values of
// the wrong type and duplicate keys are errors (kubectl only finds those with
// a server). The objects must then satisfy this project's deployment policy:
//
//   - every container runs as non-root with a read-only root filesystem, no
//     privilege escalation, all capabilities dropped and the RuntimeDefault
//     seccomp profile (the "restricted" Pod Security Standard and more);
//   - every container has CPU and memory requests and limits, requests not
//     above limits;
//   - probes use port names the container declares; volume mounts name
//     declared volumes; every $(VAR) in an env value refers to a variable
//     defined earlier in the same list (Kubernetes leaves unknown references
//     as literal text);
//   - a pod whose container sets SHUTDOWN_TIMEOUT gets a longer
//     terminationGracePeriodSeconds;
//   - Services, PodDisruptionBudgets and HorizontalPodAutoscalers select or
//     target workloads that exist, named Service target ports exist on the
//     selected containers, a StatefulSet's serviceName is a headless Service,
//     and an HPA-managed Deployment leaves spec.replicas unset;
//   - a worker that splits the request shards (WORKER_COUNT above 1) sets
//     SHARED_SUBSCRIPTION=false and, with WORKER_INDEX=auto, runs as a
//     StatefulSet of exactly WORKER_COUNT replicas;
//   - a prometheus-adapter configuration (config.yaml of a ConfigMap
//     labelled app.kubernetes.io/name=prometheus-adapter) decodes strictly
//     into the adapter's schema, and its rules are sound: a series query,
//     a metrics query using <<.Series>>, <<.LabelMatchers>> and
//     <<.GroupBy>>, resource overrides on labels the query selects, a
//     namespace beside every pod mapping, a name.matches that compiles and
//     matches the series;
//   - every Pods, Object or External metric of an HPA is served by such a
//     rule in the same deployment (a Pods metric by a rule that maps pods),
//     and a Pods metric's target is an AverageValue.
//
// Usage:
//
//	kubectl kustomize k8s/ > /tmp/base.yaml && go run . /tmp/base.yaml
//	kubectl kustomize k8s/ | go run .
//	kubectl kustomize --load-restrictor LoadRestrictionsNone k8s/overlays/queue-autoscaling | go run .
//
// Each FILE is checked on its own, as one complete deployment. It prints one
// line per problem and exits 1 if there is any, 2 on unreadable input.
package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/json"
	"k8s.io/apimachinery/pkg/util/intstr"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	sigsyaml "sigs.k8s.io/yaml"
)

func main() { os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) }

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 1 && (args[0] == "-h" || args[0] == "--help") {
		fmt.Fprintln(stdout, "usage: kubecheck [FILE.yaml ...]   (no FILE or \"-\": read standard input)")
		return 0
	}
	if len(args) == 0 {
		args = []string{"-"}
	}
	failed := 0
	for _, name := range args {
		var r io.Reader = stdin
		label := "<stdin>"
		if name != "-" {
			f, err := os.Open(name)
			if err != nil {
				fmt.Fprintf(stderr, "kubecheck: %v\n", err)
				return 2
			}
			defer f.Close()
			r, label = f, name
		}
		// Each input is one complete deployment: cross-references are
		// resolved within it.
		objs, problems, err := decodeAll(label, r)
		if err != nil {
			fmt.Fprintf(stderr, "kubecheck: %s: %v\n", label, err)
			return 2
		}
		problems = append(problems, check(objs)...)
		for _, p := range problems {
			fmt.Fprintf(stdout, "FAIL %s: %s\n", label, p)
		}
		fmt.Fprintf(stdout, "kubecheck: %s: %d objects, %d problems\n", label, len(objs), len(problems))
		failed += len(problems)
	}
	if failed > 0 {
		return 1
	}
	return 0
}

// object is one decoded document with where it came from.
type object struct {
	source string // file label and document index, for messages
	obj    runtime.Object
}

func (o object) meta() metav1.Object {
	m, _ := o.obj.(metav1.Object)
	return m
}

// id is "Kind namespace/name", the way problems name an object.
func (o object) id() string {
	kind := strings.TrimPrefix(fmt.Sprintf("%T", o.obj), "*")
	if i := strings.LastIndex(kind, "."); i >= 0 {
		kind = kind[i+1:]
	}
	m := o.meta()
	if m == nil {
		return kind
	}
	if m.GetNamespace() == "" {
		return kind + " " + m.GetName()
	}
	return kind + " " + m.GetNamespace() + "/" + m.GetName()
}

var scheme = func() *runtime.Scheme {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{
		corev1.AddToScheme, appsv1.AddToScheme, autoscalingv2.AddToScheme,
		policyv1.AddToScheme, batchv1.AddToScheme, networkingv1.AddToScheme,
		rbacv1.AddToScheme,
	} {
		if err := add(s); err != nil {
			panic(err)
		}
	}
	return s
}()

var strictYAML = json.NewSerializerWithOptions(json.DefaultMetaFactory, scheme, scheme,
	json.SerializerOptions{Yaml: true, Strict: true})

// decodeAll splits a multi-document YAML stream and decodes each document
// strictly. Decoding problems are returned as problems; only an unreadable
// stream is an error.
func decodeAll(label string, r io.Reader) ([]object, []string, error) {
	yr := utilyaml.NewYAMLReader(bufio.NewReader(r))
	var objs []object
	var problems []string
	for i := 0; ; i++ {
		doc, err := yr.Read()
		if errors.Is(err, io.EOF) {
			return objs, problems, nil
		}
		if err != nil {
			return nil, nil, err
		}
		src := fmt.Sprintf("%s#%d", label, i)
		var probe any
		if err := sigsyaml.Unmarshal(doc, &probe); err != nil {
			problems = append(problems, fmt.Sprintf("%s: not YAML: %v", src, err))
			continue
		}
		if probe == nil {
			continue // empty document: comments only, or a trailing "---"
		}
		if _, err := sigsyaml.YAMLToJSONStrict(doc); err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", src, err))
			continue
		}
		obj, gvk, err := strictYAML.Decode(doc, nil, nil)
		if err != nil && obj == nil {
			problems = append(problems, fmt.Sprintf("%s: %v", src, err))
			continue
		}
		o := object{source: src, obj: obj}
		if err != nil { // strict decoding error: the object decoded, with unknown fields
			problems = append(problems, fmt.Sprintf("%s (%s): %v", o.id(), src, err))
		}
		if gvk != nil && gvk.Kind == "" {
			problems = append(problems, fmt.Sprintf("%s: no kind", src))
		}
		if m := o.meta(); m != nil && m.GetName() == "" {
			problems = append(problems, fmt.Sprintf("%s (%s): metadata.name is empty", o.id(), src))
		}
		objs = append(objs, o)
	}
}

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
		}
		if s, ok := o.obj.(*corev1.Service); ok {
			services[s.Namespace+"/"+s.Name] = s
		}
		if cm, ok := o.obj.(*corev1.ConfigMap); ok && cm.Labels[adapterLabel] == adapterName {
			checkAdapterConfig(cm, &served, func(format string, a ...any) { add(o, format, a...) })
		}
	}

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
	if w.selector == nil {
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
