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
//   - a loadgen that sets FLEET_ID runs in an Indexed Job that runs every
//     index at once and once only, parallelism = completions = FLEET_SIZE,
//     restartPolicy Never, backoffLimitPerIndex 0 and nothing that fails
//     the whole Job at one failed pod (its running pods, index 0 with the
//     fleet's report, would be deleted); FLEET_INDEX=auto, DURATION set,
//     METRICS_LINGER long enough to fetch the merged report, an
//     activeDeadlineSeconds that leaves room for the run, and no other
//     loadgen workload beside it (fleet.go);
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
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/json"
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
